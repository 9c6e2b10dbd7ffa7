"""Case 7, web: ``tapster web`` against ``twistd web`` serving the same files.

Both serve one folder of random files (1 KiB, 100 KiB, 1 MiB) on 127.0.0.1; wrk
loads one file at a time with 50 keep-alive connections. Each file is measured
in three access-log settings, the same in both servers:

* "log on (main log)": each server's default -- every request is a record in
  the server's own log (``tapster --logfile`` / ``twistd --logfile``).
* "log on (own file)": a dedicated access log file --
  ``tapster web --access-log-file F`` / ``twistd web --logfile F``.
* "log off": ``tapster web --no-access-log``; twistd has no switch for it, so
  its access log goes to a file of its own in the case's temporary folder
  (``web --logfile F``: lines are still formatted and written). Never
  ``/dev/null``: twistd rotates its log every megabyte, and as root it once
  renamed the real device away.

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
    Metric,
    Server,
    free_port,
    http_probe,
    run_wrk,
    start_server,
)

#: Requests served per CPU second the server used: steadier than the raw rate on a busy machine.
EFFICIENCY = Metric("req_per_cpu_s", "req/CPU-s", lower_is_better=False, label="server efficiency")
#: The machine's CPU time the hypervisor gave to other guests during the run. Not a property of
#: either server: a run with a high figure measured a slower machine (and a server that asks for
#: more CPU, with wrk on the other core, is denied more of it).
STEAL = Metric("steal_pct", "%", label="machine steal during the run")

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
    for setting in ("log on (main log)", "log on (own file)", "log off"):
        key = setting.split("(")[-1].strip(")").replace(" ", "-")
        tap_port, tw_port = free_port(), free_port()
        tap_log = ctx.tmpdir / f"tapster-web-{key}.log"
        tw_log = ctx.tmpdir / f"twistd-web-{key}.log"
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
        if setting == "log off":
            tapster_argv.append("--no-access-log")
        elif setting == "log on (own file)":
            tapster_argv += ["--access-log-file", str(ctx.tmpdir / "tapster-access.log")]
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
        if setting == "log off":
            twistd_argv += ["--logfile", str(ctx.tmpdir / "twistd-access-off.log")]
        elif setting == "log on (own file)":
            twistd_argv += ["--logfile", str(ctx.tmpdir / "twistd-access.log")]
        with (
            start_server(tapster_argv, port=tap_port, env=env, probe=http_probe("/1k.bin")) as tap,
            start_server(
                twistd_argv, port=tw_port, env=env, cwd=ctx.tmpdir, probe=http_probe("/1k.bin")
            ) as tw,
        ):
            for label, name, _ in FILES:

                def load(server: Server, url: str) -> dict[str, float]:
                    before = server.cpu_seconds()
                    result = run_wrk(url, connections=50, duration=duration)
                    used = server.cpu_seconds() - before
                    result["server_cpu_s"] = used
                    result["server_cores"] = used / max(result.get("duration_s", duration), 1e-9)
                    result["req_per_cpu_s"] = result["requests"] / used if used > 0 else 0.0
                    result["steal_pct"] = 100.0 * result["steal_share"]
                    return result

                yield Comparison(
                    f"{label}, {setting}",
                    (REQUESTS_PER_S, P99_MS, EFFICIENCY, STEAL),
                    tapster=lambda u=f"{tap.url}/{name}": load(tap, u),
                    twistd=lambda u=f"{tw.url}/{name}": load(tw, u),
                    note="wrk -c 50 -t 1, keep-alive",
                )


CASE = Case(
    name="web",
    number=7,
    issue=8,
    title="tapster web vs twistd web: static files, 50 connections, access log on/off",
    description="wrk -c 50 against the same files; three access-log settings, alike on both sides",
    comparisons=comparisons,
    runs=5,
    warmup=1,
)
