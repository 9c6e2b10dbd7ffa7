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

When nginx is installed (``apt-get install -y nginx``), the "log off" setting also measures
tapster against nginx, the ceiling for static files: one process (``master_process off``),
``sendfile on``, ``access_log off``, every path it writes (error log, pid, temp folders) in the
case's temporary folder. Those comparisons say "against nginx"; the harness's second column
("twistd") then holds nginx.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

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


_NGINX_CONF = """\
worker_processes 1;
master_process off;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ application/octet-stream bin; }}
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {site};
    }}
}}
"""


def find_nginx() -> str | None:
    """nginx's path, or None when it is not installed (root's sbin is often off PATH)."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def nginx_argv(nginx: str, tmp: Path, site: Path, port: int) -> list[str]:
    """Write an nginx configuration serving ``site`` into ``tmp``; return the command line.

    ``-e`` names the error log before the configuration is read, so nginx never opens its
    compiled-in default under ``/var/log``.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(tmp=tmp, port=port, site=site))
    return [nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]


def _load(server: Server, url: str, duration: float) -> dict[str, float]:
    before = server.cpu_seconds()
    result = run_wrk(url, connections=50, duration=duration)
    used = server.cpu_seconds() - before
    result["server_cpu_s"] = used
    result["server_cores"] = used / max(result.get("duration_s", duration), 1e-9)
    result["req_per_cpu_s"] = result["requests"] / used if used > 0 else 0.0
    result["steal_pct"] = 100.0 * result["steal_share"]
    return result


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
        nginx = find_nginx() if setting == "log off" else None
        probe = http_probe("/1k.bin")
        with start_server(tapster_argv, port=tap_port, env=env, probe=probe) as tap:
            with start_server(
                twistd_argv, port=tw_port, env=env, cwd=ctx.tmpdir, probe=probe
            ) as tw:
                for label, name, _ in FILES:
                    yield Comparison(
                        f"{label}, {setting}",
                        (REQUESTS_PER_S, P99_MS, EFFICIENCY, STEAL),
                        tapster=lambda u=f"{tap.url}/{name}": _load(tap, u, duration),
                        twistd=lambda u=f"{tw.url}/{name}": _load(tw, u, duration),
                        note="wrk -c 50 -t 1, keep-alive",
                    )
            if nginx is None:
                continue
            ng_port = free_port()
            ng_argv = nginx_argv(nginx, ctx.tmpdir / "nginx", site, ng_port)
            with start_server(ng_argv, port=ng_port, env=env, cwd=ctx.tmpdir, probe=probe) as ng:
                for label, name, _ in FILES:
                    yield Comparison(
                        f"{label}, {setting}, against nginx",
                        (REQUESTS_PER_S, P99_MS, EFFICIENCY, STEAL),
                        tapster=lambda u=f"{tap.url}/{name}": _load(tap, u, duration),
                        twistd=lambda u=f"{ng.url}/{name}": _load(ng, u, duration),
                        note="wrk -c 50 -t 1, keep-alive; second column: nginx, one process, "
                        "sendfile on, access log off",
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
