"""The runner options after parsing, as one typed, immutable record.

A ``NamedTuple`` rather than a dataclass: it is on the start-up path, and
creating it costs a fraction of what importing ``dataclasses`` does. No
``from __future__ import annotations`` here: ``NamedTuple`` would turn each
string annotation into a compiled ``ForwardRef``, which doubles the cost of
defining the class (about 2 M instructions, measured with callgrind).
"""

from typing import NamedTuple

__all__ = ["RunSettings"]


class RunSettings(NamedTuple):
    """The runner options after parsing, typed (what the run path reads)."""

    daemon: bool
    logfile: str | None
    log_level: int
    log_format: str
    log_rotate_size: int | None
    log_backups: int
    syslog: bool
    prefix: str
    syslog_socket: str
    pidfile: str | None
    rundir: str
    uid: int | None
    gid: int | None
    umask: int | None
    chroot: str | None
    euid: bool
    loop: str
    tac: str | None
    debug: bool
    profile: str | None
    profiler: str
    savestats: bool
    spew: bool
    originalname: bool
    shutdown_timeout: float
    app_dir: str | None
    workers: int | None = None
    worker_timeout: float = 30.0
    max_worker_memory: int | None = None
    max_worker_age: float | None = None
    admin: str | None = None
    loop_stall: float = 0.5
    no_spare_worker: bool = False
    reuse_port: bool = False
    shutdown_delay: float = 0.0
