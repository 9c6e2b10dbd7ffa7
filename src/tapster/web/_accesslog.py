"""The access log: one combined-log-format line per request.

Lines go either to the logger ``tapster.web.access`` (the default: the runner
decides where logs go, and writes them in batches) or, with
``--access-log-file``, straight to a file of their own. That file is written
in batches -- at most every 0.2 seconds or 64 KiB -- so a busy server pays
one ``write`` per batch instead of one per request; a writer thread does the
writing (and the check whether the file was renamed or removed by log
rotation, after which it is reopened), so a slow disk never stalls the loop.
The file is opened like the runner's own log file, by
:func:`tapster.runner._files.open_regular`: never through a symbolic link,
never blocking (a named pipe nobody reads is refused, not waited on); a
character device or a pipe someone reads is written to as it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from ._http import Request

logger = logging.getLogger("tapster.web.access")

#: Seconds between writes of a batch of lines to an access log file.
FLUSH_INTERVAL = 0.2
_FLUSH_SIZE = 64 * 1024
_FILE_MODE = 0o640


def printable(value: bytes) -> str:
    """Bytes for a log line: non-printable characters and quotes escaped, never raw."""
    text = value.decode("latin-1")
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


class _ClfClock:
    """``25/Nov/2026:16:52:00 +0000``, formatted once per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        return self._text


_clock = _ClfClock()


def _sole_handler() -> logging.Handler | None:
    """The one handler an access record would reach, when nothing else would see it.

    That is: the access logger neither filtered nor disabled, and exactly one
    handler on it and the loggers it propagates to (normally the runner's, on
    the root).
    """
    if logger.filters or logger.disabled:
        return None
    found: logging.Handler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def format_line(req: Request | None, client: str, status: int, length: int) -> str:
    """One combined log format line (without the newline)."""
    if req is None:
        return f'{client} - - [{_clock.now()}] "-" {status} {length} "-" "-"'
    referer = req.get(b"referer")
    agent = req.get(b"user-agent")
    return (
        f"{client} - {printable(req.remote_user.encode()) if req.remote_user else '-'} "
        f'[{_clock.now()}] "{req.method} {printable(req.target)} HTTP/{req.version}" '
        f'{status} {length} "{printable(referer) if referer else "-"}" '
        f'"{printable(agent) if agent else "-"}"'
    )


class AccessLog:
    """Where access lines go; ``enabled`` is False when there is nowhere to write."""

    def __init__(self, enabled: bool, path: str | None = None) -> None:
        #: False with ``--no-access-log``: one field read on every response, before ``enabled``.
        self.on = enabled
        self._path = os.path.abspath(path) if path else None
        self._fd = -1
        self._ino: tuple[int, int] | None = None
        self._reopen_failure: str | None = None  # warned about once, until a reopen works
        self._lines: list[str] = []
        self._pending = 0
        self._timer: asyncio.TimerHandle | None = None
        # One thread, so batches are written in the order they were made.
        self._writer: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        """Whether a line would be written at all (checked before formatting one)."""
        if not self.on:
            return False
        return self._path is not None or logger.isEnabledFor(logging.INFO)

    def open(self) -> None:
        """Open the access log file (if any). Raises ``OSError`` naming the file and the reason."""
        if self._path is not None and self._fd < 0:
            try:
                self._open_file()
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise OSError(
                    exc.errno, f"cannot open the access log file {self._path}: {reason}"
                ) from None

    def _open_file(self) -> None:
        """Open the name (again); the file open so far is closed only once the new one is."""
        assert self._path is not None
        # Here, not at the top: importing the runner package costs a library
        # user of tapster.web some milliseconds; under the runner it is loaded.
        from tapster.runner._files import open_regular

        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd = open_regular(self._path, flags, _FILE_MODE, streams=True)
        st = os.fstat(fd)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._ino = fd, (st.st_dev, st.st_ino)

    def write(self, line: str) -> None:
        """Record one line."""
        if self._path is None:
            # The runner's handler takes the line without a record when that
            # changes nothing (see BatchingHandler.log_line); otherwise a
            # record made directly: no caller lookup (the source line of an
            # access record says nothing), no second level check.
            handler = _sole_handler()
            direct = getattr(handler, "log_line", None)
            plain = logging.getLogRecordFactory() is logging.LogRecord  # no factory adds fields
            if direct is not None and plain and direct(logger.name, logging.INFO, line):
                return
            logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None))
            return
        self._lines.append(line)
        self._pending += len(line) + 1
        if self._pending >= _FLUSH_SIZE:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        """Hand the batched lines to the writer thread now (once closed, write them here)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode("utf-8", "backslashreplace")
        self._lines.clear()
        self._pending = 0
        if self._closed:
            self._write(data)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="tapster-access-log")
        self._writer.submit(self._write, data)

    def _write(self, data: bytes) -> None:
        """Append one batch (in the writer thread, batches one after another)."""
        try:
            self._reopen_if_moved()
        except OSError as exc:
            # Typically a folder the service user cannot write: say so once, and
            # write on to the file open so far (renamed, but still there).
            failure = f"{exc.strerror or exc}"
            if failure != self._reopen_failure:
                self._reopen_failure = failure
                logging.getLogger("tapster.web").warning(
                    "Cannot reopen the access log %s: %s; lines keep going to the file open "
                    "until now",
                    self._path,
                    failure,
                )
        else:
            self._reopen_failure = None
        if self._fd < 0:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            logging.getLogger("tapster.web").warning(
                "Cannot write the access log %s: %s", self._path, exc.strerror or exc
            )

    def _reopen_if_moved(self) -> None:
        assert self._path is not None
        try:
            st = os.stat(self._path, follow_symlinks=False)
            moved = (st.st_dev, st.st_ino) != self._ino
        except FileNotFoundError:
            moved = True
        if moved or self._fd < 0:
            self._open_file()

    def close(self) -> None:
        """Write what waits, wait for the writer thread to finish, and close the file."""
        self.flush()
        self._closed = True
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
