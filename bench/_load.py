"""Load tools: ``wrk`` for HTTP and the project's own TCP round-trip client.

Both are bounded in time (a duration plus a hard timeout) and refuse any target other than the
local machine. Each returns a sample that includes the load generator's own CPU use, so a
saturated client is visible beside the server's figures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from bench._model import Unavailable
from bench._procs import CommandError, machine_ticks, run_timed, steal_share

TCPLOAD = Path(__file__).resolve().parent / "_tcpload.py"
WRK_HOWTO = "wrk is not installed: run `apt-get update && apt-get install -y wrk` (Debian/Ubuntu)"

_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_SIZE_UNITS = {"B": 1 / 1024 / 1024, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0**2}


def find_wrk() -> str:
    """Path of ``wrk``, or :class:`Unavailable` saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise Unavailable(WRK_HOWTO)
    return path


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """Figures from ``wrk --latency`` output: requests/s, latency percentiles (ms), errors.

    Keys: ``requests_per_s``, ``requests``, ``duration_s``, ``p50_ms``/``p75_ms``/``p90_ms``/
    ``p99_ms`` (with ``--latency``), ``max_ms`` (the slowest request), ``transfer_mb_per_s``,
    ``socket_errors``, ``non_2xx``.
    """
    result: dict[str, float] = {}
    match = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not match:
        raise ValueError("wrk printed no Requests/sec line")
    result["requests_per_s"] = float(match.group(1))
    match = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.M)
    if match:
        result["requests"] = float(match.group(1))
        result["duration_s"] = _ms(match.group(2)) / 1000.0
    for pct, value in re.findall(r"^\s+(50|75|90|99)(?:\.0+)?%\s+([\d.]+\w+)\s*$", output, re.M):
        result[f"p{pct}_ms"] = _ms(value)
    # "Latency  avg  stdev  max  +/-stdev", the first row of wrk's thread statistics.
    latency = r"^[ \t]+Latency[ \t]+[\d.]+\w+[ \t]+[\d.]+\w+[ \t]+([\d.]+\w+)"
    match = re.search(latency, output, re.M)
    if match:
        result["max_ms"] = _ms(match.group(1))
    match = re.search(r"^Transfer/sec:\s+([\d.]+)(B|KB|MB|GB|TB)", output, re.M)
    if match:
        result["transfer_mb_per_s"] = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["socket_errors"] = float(sum(int(g) for g in match.groups())) if match else 0.0
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = float(match.group(1)) if match else 0.0
    return result


def run_wrk(
    url: str,
    *,
    connections: int = 50,
    threads: int = 1,
    duration: float = 5.0,
    latency: bool = True,
    headers: Sequence[str] = (),
    extra_args: Sequence[str] = (),
) -> dict[str, float]:
    """Load ``url`` (127.0.0.1 only) with wrk for ``duration`` seconds and parse the result.

    Adds ``wrk_cpu_s`` and ``wrk_cpu_share`` (CPU seconds / wall seconds: 1.0 is one full core)
    and ``steal_share`` (the machine's CPU time taken by the hypervisor meanwhile) to
    :func:`parse_wrk`'s keys. Raises :class:`CommandError` when wrk fails or any request got
    a socket error, so a broken server never passes as a slow one.
    """
    host = urlsplit(url).hostname
    if host != "127.0.0.1":
        raise ValueError(f"load is only ever sent to 127.0.0.1, not {host}")
    argv = [find_wrk(), "-t", str(max(1, min(threads, connections))), "-c", str(connections)]
    argv += ["-d", f"{max(1, round(duration))}s", "--timeout", "10s"]
    if latency:
        argv.append("--latency")
    for header in headers:
        argv += ["-H", header]
    argv += [*extra_args, url]
    ticks = machine_ticks()
    run = run_timed(argv, env=os.environ, timeout=duration + 30.0, peak_rss=False)
    result = parse_wrk(run.stdout)
    result["steal_share"] = steal_share(ticks, machine_ticks())
    if result["socket_errors"]:
        raise CommandError(f"wrk saw {result['socket_errors']:g} socket errors against {url}")
    result["wrk_cpu_s"] = run.cpu_s
    result["wrk_cpu_share"] = run.cpu_s / (run.wall_ms / 1000.0)
    return result


def run_tcp_load(
    port: int,
    *,
    host: str = "127.0.0.1",
    connections: int = 50,
    duration: float = 3.0,
    max_round_trips: int | None = None,
    size: int = 64,
    pipeline: int = 1,
    loop: str = "uvloop",
    python: str | Path | None = None,
) -> dict[str, float]:
    """Run the TCP round-trip client (``bench/_tcpload.py``) against an echo server.

    Returns ``round_trips_per_s``, ``round_trips``, ``elapsed_s``, ``p50_ms``, ``p99_ms``,
    ``client_cpu_s`` and ``client_cpu_share`` (1.0 means the client saturated a core: then the
    figure measures the client, not the server; raise ``pipeline`` or use uvloop).
    ``python`` defaults to this interpreter; pass ``ctx.tapster_python`` to get uvloop.
    """
    argv = [str(python or sys.executable), str(TCPLOAD), "--host", host, "--port", str(port)]
    argv += ["--connections", str(connections), "--duration", str(duration)]
    argv += ["--size", str(size), "--pipeline", str(pipeline), "--loop", loop]
    if max_round_trips is not None:
        argv += ["--max-round-trips", str(max_round_trips)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    run = run_timed(argv, env=env, timeout=duration + 30.0, peak_rss=False)
    data = json.loads(run.stdout.strip().splitlines()[-1])
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


LOGINLOAD = Path(__file__).resolve().parent / "_loginload.py"


def run_login_load(
    port: int,
    logins: Sequence[str],
    *,
    host: str = "127.0.0.1",
    connections: int = 20,
    duration: float = 3.0,
    max_logins: int | None = None,
    ping_interval: float = 0.01,
    loop: str = "uvloop",
    python: str | Path | None = None,
) -> dict[str, float]:
    """Flood a ``bench-login`` server (``bench/_loginload.py``) with ``LOGIN`` lines.

    ``logins`` are ``"user:password"`` pairs, cycled (include wrong ones to mix failures in).
    Returns ``logins_per_s``, ``logins``, ``ok``, ``fail``, ``other``, ``ping_p50_ms``,
    ``ping_p99_ms``, ``stall_ms`` (the longest PING round trip during the flood: how long the
    server's loop stalled at worst) and ``client_cpu_share``.
    """
    argv = [str(python or sys.executable), str(LOGINLOAD), "--host", host, "--port", str(port)]
    argv += ["--connections", str(connections), "--duration", str(duration)]
    argv += ["--ping-interval", str(ping_interval), "--loop", loop]
    for pair in logins:
        argv += ["--login", pair]
    if max_logins is not None:
        argv += ["--max-logins", str(max_logins)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    run = run_timed(argv, env=env, timeout=duration + 30.0, peak_rss=False)
    data = json.loads(run.stdout.strip().splitlines()[-1])
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}
