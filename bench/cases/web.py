"""Case 7, web: ``tapster web`` against ``twistd web`` serving the same files.

Both serve one folder of random files (1 KiB, 100 KiB, 1 MiB) on 127.0.0.1; wrk
loads one file at a time with 50 keep-alive connections. Each file is measured
with the access log on in both servers and off in both:

* on: each server's default -- tapster logs every request through ``logging``
  into its ``--logfile``; twistd logs every request into its ``--logfile``.
* off: ``tapster web --no-access-log``; twistd has no switch for it, so its
  access log goes to ``--logfile /dev/null`` (lines are still formatted).

tapster runs on its default loop (uvloop when installed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from bench import (
    P99_MS,
    REQUESTS_PER_S,
    Case,
    Comparison,
    Context,
    free_port,
    http_probe,
    run_wrk,
    start_server,
)

FILES = (
    ("1 KiB", "1k.bin", 1024),
    ("100 KiB", "100k.bin", 100 * 1024),
    ("1 MiB", "1m.bin", 1024**2),
)


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Start both servers per log setting; yield one comparison per file."""
    site = ctx.tmpdir / "web-site"
    site.mkdir(exist_ok=True)
    for _, name, size in FILES:
        (site / name).write_bytes(os.urandom(size))
    duration = 2.0 if ctx.quick else 5.0
    env = ctx.env()
    for log_on in (True, False):
        tap_port, tw_port = free_port(), free_port()
        tap_log = ctx.tmpdir / f"tapster-web-{log_on}.log"
        tw_log = ctx.tmpdir / f"twistd-web-{log_on}.log"
        tapster_argv = [
            ctx.tapster_bin("tapster"),
            "--logfile",
            str(tap_log),
            "web",
            "--listen",
            f"tcp:{tap_port}:interface=127.0.0.1",
            "--path",
            str(site),
        ]
        if not log_on:
            tapster_argv.append("--no-access-log")
        twistd_argv = [
            ctx.twisted_bin("twistd"),
            "-n",
            "--pidfile=",
            "--logfile",
            str(tw_log),
            "web",
            "--listen",
            f"tcp:{tw_port}:interface=127.0.0.1",
            "--path",
            str(site),
        ]
        if not log_on:
            twistd_argv += ["--logfile", os.devnull]
        with (
            start_server(tapster_argv, port=tap_port, env=env, probe=http_probe("/1k.bin")) as tap,
            start_server(
                twistd_argv, port=tw_port, env=env, cwd=ctx.tmpdir, probe=http_probe("/1k.bin")
            ) as tw,
        ):
            for label, name, _ in FILES:

                def load(url: str) -> dict[str, float]:
                    return run_wrk(url, connections=50, duration=duration)

                yield Comparison(
                    f"{label}, access log {'on' if log_on else 'off'}",
                    (REQUESTS_PER_S, P99_MS),
                    tapster=lambda u=f"{tap.url}/{name}": load(u),
                    twistd=lambda u=f"{tw.url}/{name}": load(u),
                    note="wrk -c 50 -t 1, keep-alive",
                )


CASE = Case(
    name="web",
    number=7,
    issue=8,
    title="tapster web vs twistd web: static files, 50 connections, access log on/off",
    comparisons=comparisons,
    runs=3,
    warmup=1,
)
