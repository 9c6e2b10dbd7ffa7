"""Case 3: plugin discovery with N = 0, 100 and 1000 generated service-maker plugins.

Each side gets a drop-in folder of N generated modules, each defining one service maker
(``gen0000`` ...), and runs ``--help``, which lists them all:

- ``warm``: the plugin caches are up to date (the warm-up run wrote them);
- ``no cache``: before each run the N-plugin folder's cache is deleted (tapster's
  ``.tapster-plugin-cache.json``, Twisted's ``dropin.cache``), so every module is imported and the
  cache written again. Each side's built-in plugins keep their caches, and so does tapster's
  entry point cache (in a scratch ``XDG_CACHE_HOME``).

tapster runs with the folder as its current directory (its default ``--app-dir``); twistd with
``PYTHONPATH`` set to it (and the same current directory). ``python -c pass`` on tapster's
interpreter is measured in the same run, as the yardstick for issue 4's targets.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from bench import (
    CPU_MS,
    WALL_MS,
    Case,
    CommandError,
    Comparison,
    Context,
    Unavailable,
    clear_plugin_caches,
    run_timed,
    tapster_maker_source,
    tapster_plugin_dir,
    twisted_maker_source,
    twisted_plugin_dir,
)

SIZES = (0, 100, 1000)
QUICK_SIZES = (0, 100)


def _names(n: int) -> list[str]:
    return [f"gen{i:04d}" for i in range(n)]


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Yield the floor, then warm and no-cache ``--help`` for each N."""
    metrics = (WALL_MS, CPU_MS)
    xdg = ctx.tmpdir / "xdg-cache"
    xdg.mkdir(exist_ok=True)
    tapster_env = ctx.env({"XDG_CACHE_HOME": str(xdg)})

    def floor() -> dict[str, float]:
        argv = [str(ctx.tapster_python), "-c", "pass"]
        return dict(run_timed(argv, env=tapster_env, cwd=ctx.tmpdir, peak_rss=False).sample)

    yield Comparison(
        "python -c pass",
        metrics,
        tapster=floor,
        twistd=floor,
        note="the yardstick: tapster's interpreter on both sides",
    )

    for n in QUICK_SIZES if ctx.quick else SIZES:
        names = _names(n)
        troot = ctx.tmpdir / f"tapster-{n}"
        tapster_plugin_dir(troot, {name: tapster_maker_source(name) for name in names})
        (troot / "tapster" / "plugins").mkdir(parents=True, exist_ok=True)
        wroot = ctx.tmpdir / f"twisted-{n}"
        twisted_env = ctx.env(
            twisted_plugin_dir(wroot, {name: twisted_maker_source(name) for name in names})
        )
        last = names[-1] if names else None

        def tapster(
            root: Path = troot, last: str | None = last, cold: bool = False
        ) -> dict[str, float]:
            if cold:
                clear_plugin_caches(root)
            argv = [ctx.tapster_bin("tapster"), "--help"]
            try:
                run = run_timed(argv, env=tapster_env, cwd=root, expect=last, peak_rss=False)
            except CommandError as exc:
                raise Unavailable(f"`tapster --help` failed here: {exc}") from exc
            return {**run.sample, "output_lines": float(len(run.stdout.splitlines()))}

        def twistd(
            root: Path = wroot,
            last: str | None = last,
            env: dict[str, str] = twisted_env,
            cold: bool = False,
        ) -> dict[str, float]:
            if cold:
                clear_plugin_caches(root)
            argv = [ctx.twisted_bin("twistd"), "--help"]
            run = run_timed(argv, env=env, cwd=root, expect=last or "web", peak_rss=False)
            return {**run.sample, "output_lines": float(len(run.stdout.splitlines()))}

        yield Comparison(
            f"N={n} --help, warm cache",
            metrics,
            tapster=tapster,
            twistd=twistd,
            note=f"{n} generated plugins, caches warm",
        )
        yield Comparison(
            f"N={n} --help, no cache",
            metrics,
            tapster=partial(tapster, cold=True),
            twistd=partial(twistd, cold=True),
            runs=5 if n >= 1000 else None,
            note=f"{n} generated plugins, the folder's cache deleted before each run",
        )


CASE = Case(
    name="discovery",
    number=3,
    issue=4,
    title="Plugin discovery, N = 0/100/1000, warm and cold cache",
    comparisons=comparisons,
    runs=10,
)
