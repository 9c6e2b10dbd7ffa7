"""The runner options after parsing, as one typed, immutable record."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunSettings"]


@dataclass(frozen=True)
class RunSettings:
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
    app_dir: str
