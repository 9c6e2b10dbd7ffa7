"""Logging for a running application: where lines go, what they look like, reopening.

The runner is the program, so it is the one place that configures the root
logger (libraries only ever call ``logging.getLogger("tapster.<area>")``).

Destinations: a stream (stderr by default in the foreground, or stdout with
``--logfile -``), a file (``tapster.log`` in the run directory by default for a
daemon), or syslog. Formats: ``text`` (time, level, logger, message) or
``json`` (one object a line).

No line is lost when the file is reopened (``SIGUSR1``/``SIGHUP`` after
logrotate moved it) or rotated internally (``--log-rotate-size``): every line
is written with a single unbuffered ``write`` under the handler's lock, and
the reopen takes the same lock, so each line lands whole in either the old
file or the new one. The file is handled through a descriptor of its
directory, so reopening still works after a ``chroot``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys
import time
from typing import NamedTuple, TextIO

from tapster.runner._files import describe_kind

__all__ = [
    "EarlyRecords",
    "JsonFormatter",
    "LogConfig",
    "LogError",
    "Logs",
    "ReopeningFileHandler",
    "TextFormatter",
    "capture_early",
    "setup_logging",
    "show_on_stderr",
]

_FILE_MODE = 0o644


class LogError(Exception):
    """The log destination cannot be opened; the message names it and why."""


class LogConfig(NamedTuple):
    """What the user asked for on the command line."""

    level: int = logging.INFO
    format: str = "text"
    file: str | None = None  # None: stderr; "-": stdout; else a path
    rotate_size: int | None = None
    backups: int = 5
    syslog: bool = False
    prefix: str = "tapster"
    syslog_socket: str = "/dev/log"


class TextFormatter(logging.Formatter):
    """``2026-01-31 12:00:00.123 INFO tapster.runner: message`` (local time)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        import json  # cached after the first line; text logs never pay for it

        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        data: dict[str, object] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


class ReopeningFileHandler(logging.Handler):
    """Appends lines to a file that can be reopened and rotated without losing any."""

    def __init__(self, path: str, rotate_size: int | None = None, backups: int = 5) -> None:
        super().__init__()
        self.path = os.path.abspath(path)
        self.rotate_size = rotate_size
        self.backups = backups
        self._name = os.path.basename(self.path)
        self._fd = -1
        self._dir_fd = -1
        self._size = 0
        self._regular = False
        self.notice: str | None = None  # a warning to log once logging is set up
        directory = os.path.dirname(self.path)
        try:
            self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise LogError(f"cannot open log file {self.path}: {exc.strerror}") from None
        try:
            self._open()
        except OSError as exc:
            os.close(self._dir_fd)
            self._dir_fd = -1
            raise LogError(f"cannot open log file {self.path}: {exc.strerror}") from None

    def _open(self) -> None:
        """Open the name for appending; rotation stays on only for a plain regular file.

        A character device (``/dev/stdout``, ``/dev/console``) or a named pipe
        someone reads is a fine destination, but renaming it away and putting a
        regular file in its place would break the system: rotation is switched
        off for those, and for a symbolic link (which rotation would move, not
        the file it points to). Block devices are refused outright.
        """
        try:
            named = os.stat(self._name, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            named = None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(self._name, flags, _FILE_MODE, dir_fd=self._dir_fd)
        except OSError as exc:
            if exc.errno == errno.ENXIO and named is not None:
                kind = "a socket" if stat.S_ISSOCK(named.st_mode) else "a named pipe nobody reads"
                raise OSError(exc.errno, f"it is {kind}") from None
            raise
        try:
            opened = os.fstat(fd)
            if stat.S_ISBLK(opened.st_mode):
                raise OSError(errno.EINVAL, "it is a block device (refused)")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._size = opened.st_size
        plain_name = named is None or stat.S_ISREG(named.st_mode)
        self._regular = plain_name and stat.S_ISREG(opened.st_mode)
        if self.rotate_size and not self._regular:
            self.rotate_size = None
            what = describe_kind(named.st_mode if named is not None else opened.st_mode)
            self.notice = f"log rotation disabled: {self.path} is {what}, not a regular file"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "replace")
            if self.rotate_size and self._size and self._size + len(data) > self.rotate_size:
                try:
                    self._rotate()
                except OSError as exc:
                    # Typically a directory the user we became cannot write: keep
                    # appending to the one file rather than failing every line.
                    self.rotate_size = None
                    notice = f"tapster: log rotation disabled: {exc.strerror or exc}\n"
                    os.write(self._fd, notice.encode("utf-8", "replace"))
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._size += len(data)
        except Exception:
            self.handleError(record)

    def reopen(self) -> None:
        """Close and reopen the file by name (after an external rotation)."""
        with self.lock if self.lock else _nolock():
            self._reopen()

    def _reopen(self) -> None:
        old = self._fd
        try:
            self._open()
            if self.notice is not None:
                notice, self.notice = self.notice, None
                os.write(self._fd, f"tapster: {notice}\n".encode("utf-8", "replace"))
        except OSError as exc:
            # Keep writing to the old file rather than losing lines.
            sys.stderr.write(f"tapster: cannot reopen log file {self.path}: {exc.strerror}\n")
            return
        if old >= 0:
            os.close(old)

    def _rotate(self) -> None:
        d = self._dir_fd
        try:
            named = os.stat(self._name, dir_fd=d, follow_symlinks=False)
        except FileNotFoundError:
            named = None
        own = os.fstat(self._fd)
        if named is None or (named.st_dev, named.st_ino) != (own.st_dev, own.st_ino):
            # Moved away or replaced by someone else: start on whatever the name is now.
            self._reopen()
            return
        for index in range(1, self.backups + 1):
            try:
                backup = os.stat(f"{self._name}.{index}", dir_fd=d, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(backup.st_mode):
                raise OSError(
                    errno.EEXIST,
                    f"{self.path}.{index} is {describe_kind(backup.st_mode)}, not a regular file",
                )
        for index in range(self.backups - 1, 0, -1):
            src = f"{self._name}.{index}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(src, f"{self._name}.{index + 1}", src_dir_fd=d, dst_dir_fd=d)
        if self.backups > 0:
            os.rename(self._name, f"{self._name}.1", src_dir_fd=d, dst_dir_fd=d)
        else:
            os.unlink(self._name, dir_fd=d)
        self._reopen()

    def chown(self, uid: int, gid: int) -> None:
        """Give the file to the user the process is about to become."""
        if self._fd >= 0:
            os.fchown(self._fd, uid, gid)

    def close(self) -> None:
        with self.lock if self.lock else _nolock():
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
        super().close()


class _nolock:  # noqa: N801
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class Logs:
    """The handlers the runner installed, with the operations signals ask for."""

    def __init__(self, handler: logging.Handler, description: str) -> None:
        self.handler = handler
        self.description = description

    @property
    def file(self) -> ReopeningFileHandler | None:
        """The file handler, when logging goes to a file."""
        return self.handler if isinstance(self.handler, ReopeningFileHandler) else None

    def reopen(self) -> None:
        """Reopen the log file (a no-op for streams and syslog)."""
        if self.file is not None:
            self.file.reopen()

    def chown(self, uid: int, gid: int) -> None:
        """Let the user the process becomes reopen and rotate its log file."""
        if self.file is not None:
            self.file.chown(uid, gid)

    def set_stream(self, stream: TextIO) -> None:
        """Point a stream handler elsewhere (after the daemon closed stdio)."""
        if isinstance(self.handler, logging.StreamHandler) and self.file is None:
            self.handler.setStream(stream)

    def close(self) -> None:
        """Flush and detach the handler from the root logger."""
        root = logging.getLogger()
        root.removeHandler(self.handler)
        self.handler.close()


class EarlyRecords(logging.Handler):
    """Keeps every record logged before the real destination is configured.

    Plugins may log while their options are parsed (``--auth file:F`` warns
    about a bad line in F) and while their service is built, long before the
    runner knows where logs go. Those records are kept here and replayed into
    the configured handler (so they reach ``--logfile``, syslog or a daemon's
    log), or shown on stderr when the run ends before that.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._previous_level = logging.WARNING

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def finish(self) -> list[logging.LogRecord]:
        """Stop capturing; return (and forget) what was kept."""
        root = logging.getLogger()
        if self in root.handlers:
            root.removeHandler(self)
            root.setLevel(self._previous_level)
        records, self.records = self.records, []
        return records


def capture_early() -> EarlyRecords:
    """Start keeping records until logging is configured (the running capture, if any)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, EarlyRecords):
            return handler
    handler = EarlyRecords()
    handler._previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return handler


def show_on_stderr(records: list[logging.LogRecord], level: int) -> None:
    """Write the records at ``level`` or above to stderr, as log lines."""
    shown = [record for record in records if record.levelno >= level]
    if not shown:
        return
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(TextFormatter())
    for record in shown:
        stream.handle(record)
    stream.flush()


def _check_syslog(address: str) -> None:
    """Fail now, with a clear message, if nothing listens at ``address``.

    (``SysLogHandler`` ignores a failed connection, and then every line is lost.)
    """
    import socket

    last: OSError | None = None
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_UNIX, kind) as probe:
            try:
                probe.connect(address)
            except OSError as exc:
                last = exc
            else:
                return
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise LogError(
        f"cannot log to syslog at {address}: {reason} "
        "(is a syslog daemon running? see --syslog-socket)"
    )


def _syslog_handler(config: LogConfig) -> logging.Handler:
    import logging.handlers  # pickle, socket and more: only for syslog

    _check_syslog(config.syslog_socket)
    try:
        handler = logging.handlers.SysLogHandler(
            address=config.syslog_socket,
            facility=logging.handlers.SysLogHandler.LOG_DAEMON,
        )
    except OSError as exc:
        raise LogError(
            f"cannot log to syslog at {config.syslog_socket}: {exc.strerror or exc} "
            "(is a syslog daemon running? see --syslog-socket)"
        ) from None
    if config.format == "json":
        inner = JsonFormatter()

        class _Prefixed(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return f"{config.prefix}[{record.process}]: {inner.format(record)}"

        handler.setFormatter(_Prefixed())
    else:
        handler.setFormatter(
            logging.Formatter(f"{config.prefix}[%(process)d]: %(name)s: %(message)s")
        )
    return handler


def setup_logging(config: LogConfig) -> Logs:
    """Install the destination ``config`` names on the root logger and return it."""
    handler: logging.Handler
    if config.syslog:
        handler = _syslog_handler(config)
        description = f"syslog ({config.syslog_socket}, ident {config.prefix})"
    elif config.file is None:
        handler = logging.StreamHandler(sys.stderr)
        description = "stderr"
    elif config.file == "-":
        handler = logging.StreamHandler(sys.stdout)
        description = "stdout"
    else:
        handler = ReopeningFileHandler(config.file, config.rotate_size, config.backups)
        description = handler.path
    if not config.syslog:
        handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(config.level)
    logging.captureWarnings(True)
    if isinstance(handler, ReopeningFileHandler) and handler.notice is not None:
        notice, handler.notice = handler.notice, None
        logging.getLogger("tapster.runner").warning("%s", notice)
    return Logs(handler, description)
