"""Twisted plugins run unchanged by tapster (issue 20) against ``twistd`` itself.

- ``--help``: with Twisted importable, ``tapster --help`` lists Twisted's own plugins (and the
  bundled ``bench-echo``) beside its own, from its JSON cache, importing neither Twisted nor a
  plugin module; ``twistd --help`` lists the same Twisted plugins through ``dropin.cache``.
  Both caches are warm (the warm-up run). Target: tapster at most a fifth of twistd's time.
- ``echo``: the same Twisted ``bench-echo`` plugin (a ``TCPServer``, Twisted protocol) served
  by ``tapster bench-echo`` (Twisted's asyncio reactor on tapster's loop, uvloop here) and by
  ``twistd -n bench-echo`` (Twisted's default reactor): round trips/s under 50 connections.
- ``ready``: start-to-ready of that plugin, a fresh process per run, until the first echo.

tapster runs in its own environment (the project's venv, whose Twisted is the ``test``
extra's), twistd in ``bench/.venv-twisted``: each side uses the Twisted next to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from bench import (
    CPU_MS,
    P99_MS,
    READY_MS,
    ROUND_TRIPS_PER_S,
    WALL_MS,
    Case,
    Comparison,
    Context,
    Unavailable,
    bundled_twisted_plugins,
    echo_probe,
    free_port,
    run_tcp_load,
    run_timed,
    start_server,
)


def _tapster_has_twisted(ctx: Context) -> None:
    probe = run_timed(
        [str(ctx.tapster_python), "-c", "import twisted"], env=ctx.env(), peak_rss=False
    )
    del probe  # run_timed raises CommandError when the import fails


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Yield --help, then echo round trips, then start-to-ready."""
    root = Path(ctx.tmpdir) / "twisted-case"
    twisted_env = ctx.env(bundled_twisted_plugins(root, "bench_echo"))
    xdg = root / "xdg"
    xdg.mkdir(parents=True, exist_ok=True)
    tapster_env = ctx.env({"XDG_CACHE_HOME": str(xdg)})
    try:
        _tapster_has_twisted(ctx)
    except Exception as exc:
        raise Unavailable(
            "Twisted is not installed next to tapster (pip install .[twisted])"
        ) from exc

    def tapster_help() -> dict[str, float]:
        argv = [ctx.tapster_bin("tapster"), "--app-dir", str(root), "--help"]
        run = run_timed(argv, env=tapster_env, cwd=root, expect="twisted-web")
        return dict(run.sample)

    def twistd_help() -> dict[str, float]:
        argv = [ctx.twisted_bin("twistd"), "--help"]
        run = run_timed(argv, env=twisted_env, cwd=root, expect="bench-echo")
        return dict(run.sample)

    yield Comparison(
        "--help, Twisted's plugins listed",
        (WALL_MS, CPU_MS),
        tapster=tapster_help,
        twistd=twistd_help,
        note="warm caches; target: tapster at most 0.2 of twistd",
    )

    def tapster_argv(port: int) -> list[str]:
        return [
            ctx.tapster_bin("tapster"),
            "--app-dir",
            str(root),
            "--log-level",
            "warning",
            "bench-echo",
            "--port",
            str(port),
        ]

    def twistd_argv(port: int) -> list[str]:
        return [ctx.twisted_bin("twistd"), "-n", "--pidfile=", "bench-echo", "--port", str(port)]

    tapster_port, twisted_port = free_port(), free_port()
    with (
        start_server(
            tapster_argv(tapster_port),
            port=tapster_port,
            env=tapster_env,
            cwd=root,
            probe=echo_probe(),
        ),
        start_server(
            twistd_argv(twisted_port),
            port=twisted_port,
            env=twisted_env,
            cwd=root,
            probe=echo_probe(),
        ),
    ):
        duration = 1.0 if ctx.quick else 3.0

        def load(port: int) -> dict[str, float]:
            return run_tcp_load(
                port, connections=50, duration=duration, loop="uvloop", python=ctx.tapster_python
            )

        yield Comparison(
            "echo plugin (Twisted API): tapster vs twistd -n",
            (ROUND_TRIPS_PER_S, P99_MS),
            tapster=lambda: load(tapster_port),
            twistd=lambda: load(twisted_port),
            note="50 connections, 64 B messages, uvloop client, pipeline 1",
        )

    def ready(argv_for: object, env: dict[str, str]) -> dict[str, float]:
        port = free_port()
        assert callable(argv_for)
        with start_server(argv_for(port), port=port, env=env, cwd=root, probe=echo_probe()) as s:
            return {"ready_ms": s.ready_ms}

    yield Comparison(
        "echo plugin (Twisted API): start-to-ready",
        (READY_MS,),
        tapster=lambda: ready(tapster_argv, tapster_env),
        twistd=lambda: ready(twistd_argv, twisted_env),
        note="launch to the first echo, foreground",
    )


CASE = Case(
    name="twisted",
    number=None,
    issue=20,
    title="Twisted plugins under tapster vs twistd: --help, echo round trips, start-to-ready",
    comparisons=comparisons,
)
