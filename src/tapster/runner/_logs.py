"""Logging for a running application: where lines go, and the runner's hold on them.

The runner is the program, so it is the one place that configures the root
logger (libraries only ever call ``logging.getLogger("tapster.<area>")``).

Destinations: a stream (stderr by default in the foreground, or stdout with
``--logfile -``), a file (``tapster.log`` in the run directory by default for a
daemon), or syslog. The line formats are in :mod:`tapster.runner._log_formats`;
the handlers that batch writes and reopen files without losing a line, in
:mod:`tapster.runner._log_handlers`. Records logged before the destination is
known (while options are parsed) are kept and replayed into it.
"""

from __future__ import annotations

import logging
import sys
from typing import NamedTuple, TextIO

from tapster.runner._log_formats import JsonFormatter, TextFormatter
from tapster.runner._log_handlers import (
    FILE_MODE,
    FLUSH_INTERVAL,
    BatchingHandler,
    BatchingStreamHandler,
    LogError,
    ReopeningFileHandler,
)

__all__ = [
    "FILE_MODE",
    "FLUSH_INTERVAL",
    "BatchingHandler",
    "BatchingStreamHandler",
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
    file_mode: int = FILE_MODE  # for a log file created: 0640 less the umask


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
        """Reopen the log file (a no-op for streams and syslog); :class:`LogError` says why not."""
        if self.file is not None:
            self.file.reopen()

    def chown(self, uid: int, gid: int) -> None:
        """Let the user the process becomes reopen and rotate its log file (a regular file only)."""
        if self.file is not None:
            self.file.chown(uid, gid)

    def check_written(self) -> None:
        """Raise :class:`LogError` if a line could not be written to the log file.

        For start-up: a log that cannot be written (a full disk, ``/dev/full``)
        fails the start rather than leave a service nobody hears from. Stream
        handlers (stderr, stdout) are not checked: nowhere is left to say it.
        """
        if self.file is not None:
            self.file.flush()
            if self.file.failure is not None:
                raise LogError(self.file.failure)

    def serving(self) -> None:
        """Start-up is over: failed writes are warned about on stderr from now on (once each)."""
        if isinstance(self.handler, BatchingHandler):
            self.handler.warn_from_now()

    def set_stream(self, stream: TextIO) -> None:
        """Point a stream handler elsewhere (after the daemon closed stdio)."""
        if isinstance(self.handler, BatchingStreamHandler):
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
        handler = BatchingStreamHandler(sys.stderr)
        description = "stderr"
    elif config.file == "-":
        handler = BatchingStreamHandler(sys.stdout)
        description = "stdout"
    else:
        handler = ReopeningFileHandler(
            config.file, config.rotate_size, config.backups, config.file_mode
        )
        handler.warn_on_failure = False  # until serving(): the runner reports it at start-up
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
