"""Case 2: ``tapster --help`` against ``twistd --help``, each with its built-in plugin set.

Both commands list every installed service maker. twistd's list comes from Twisted's own
plugins (web, ftp, conch, ...) through its ``dropin.cache``; tapster's from its built-in plugins
(web, portforward, procmon) through its JSON cache. The warm-up run leaves both caches warm.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench import (
    CPU_MS,
    PEAK_RSS_MB,
    WALL_MS,
    Case,
    CommandError,
    Comparison,
    Context,
    Unavailable,
    run_timed,
)


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Yield the single ``--help`` comparison."""
    env = ctx.env()
    cwd = ctx.tmpdir

    def tapster() -> dict[str, float]:
        argv = [ctx.tapster_bin("tapster"), "--help"]
        try:
            run = run_timed(argv, env=env, cwd=cwd)
        except CommandError as exc:
            raise Unavailable(f"`tapster --help` does not work in this tree yet: {exc}") from exc
        return {**run.sample, "output_lines": float(len(run.stdout.splitlines()))}

    def twistd() -> dict[str, float]:
        argv = [ctx.twisted_bin("twistd"), "--help"]
        run = run_timed(argv, env=env, cwd=cwd, expect="web")
        return {**run.sample, "output_lines": float(len(run.stdout.splitlines()))}

    yield Comparison(
        "--help", (WALL_MS, CPU_MS, PEAK_RSS_MB), tapster=tapster, twistd=twistd, note="warm caches"
    )


CASE = Case(
    name="help",
    number=2,
    issue=3,
    title="tapster --help vs twistd --help, built-in plugins",
    comparisons=comparisons,
    runs=20,
)
