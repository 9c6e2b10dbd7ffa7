"""The process's own figures, read from ``/proc`` at each scrape.

The names are the ones Prometheus' client libraries use (``process_*``), so
the usual dashboards work. Off Linux only CPU time is known.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from tapster.metrics._metric import Family

__all__ = ["process_families", "start_time"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError:
        return None


def _boot_time() -> float | None:
    text = _read("/proc/stat")
    for line in (text or "").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def start_time(pid: int | None = None) -> float | None:
    """When process ``pid`` (default: this one) started, in seconds since the epoch."""
    stat = _read(f"/proc/{pid or 'self'}/stat")
    boot = _boot_time()
    if stat is None or boot is None:
        return None
    fields = stat.rpartition(")")[2].split()
    return boot + int(fields[19]) / _TICKS


def resident_bytes(pid: int | None = None) -> float | None:
    """Resident memory of ``pid`` (default: this process), from ``/proc``."""
    statm = _read(f"/proc/{pid or 'self'}/statm")
    if statm is None:
        return None
    return float(int(statm.split()[1]) * _PAGE)


_STARTED = start_time() or time.time()


def _gauge(name: str, help: str, value: float) -> Family:
    return Family(name, "gauge", help, (), (), [((), value)])


def process_families() -> Iterator[Family]:
    """CPU seconds, resident and virtual memory, open and allowed descriptors, start time."""
    times = os.times()
    yield Family(
        "process_cpu_seconds",
        "counter",
        "User and system CPU time spent, in seconds.",
        (),
        (),
        [((), times.user + times.system)],
    )
    statm = _read("/proc/self/statm")
    if statm is not None:
        virtual, resident = statm.split()[:2]
        yield _gauge(
            "process_resident_memory_bytes", "Resident memory in bytes.", int(resident) * _PAGE
        )
        yield _gauge(
            "process_virtual_memory_bytes", "Virtual memory in bytes.", int(virtual) * _PAGE
        )
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        pass
    else:
        yield _gauge("process_open_fds", "Open file descriptors.", fds)
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError):
        pass
    else:
        yield _gauge("process_max_fds", "The most file descriptors that may be open.", soft)
    yield _gauge(
        "process_start_time_seconds",
        "Start time of the process, seconds since the epoch.",
        _STARTED,
    )
