"""Log handlers that write in batches and never lose a line: to a stream or a file.

A record is formatted at once, in the thread that logs it, and its line waits
at most :data:`FLUSH_INTERVAL` seconds before a writer thread writes everything
waiting with one ``write``, so a busy server pays one system call per batch
instead of one per line, and a slow disk stalls the writer thread, never the
event loop. Warnings and errors are written at once (with whatever waits
before them), and so is every line on a terminal. What waits is written
before the file is reopened or rotated, before a ``fork``, and when the
handler is closed (every exit path that runs Python: a graceful stop, a
failure, ``logging.shutdown`` at exit).

No line is lost when the file is reopened (``SIGUSR1``/``SIGHUP`` after
logrotate moved it) or rotated internally (``--log-rotate-size``): writes,
reopens and rotations hold one I/O lock, and a rotation splits a batch at a
line boundary, so each line lands whole in either the old file or the new
one. The file is handled through a descriptor of its directory, so reopening
still works after a ``chroot``, and opened by :func:`tapster.runner._files.open_regular`
(never through a symbolic link; a device or a pipe is written to, never
rotated or given away).

A write that fails (a full disk, ``/dev/full``) is remembered in
:attr:`BatchingHandler.failure`: the runner turns one at start-up into a
start-up failure, and later ones are warned about once on stderr, after which
lines are dropped until a write succeeds again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys
import threading
import time
import weakref
from typing import TextIO

from tapster.runner._files import describe_kind, hand_over, open_regular
from tapster.runner._log_formats import OWN_FORMATTERS

__all__ = [
    "FILE_MODE",
    "FLUSH_INTERVAL",
    "BatchingHandler",
    "BatchingStreamHandler",
    "LogError",
    "ReopeningFileHandler",
]

#: Mode of a log file the handler creates (the umask may take more away).
FILE_MODE = 0o640

#: Seconds a line may wait before the writer thread writes it (with every line waiting).
FLUSH_INTERVAL = 0.1
#: Characters waiting that wake the writer at once rather than at the end of the interval.
_FLUSH_SIZE = 256 * 1024
#: Characters waiting beyond which the logging thread writes itself (the writer is stuck).
_HARD_LIMIT = 8 * 1024 * 1024
#: The runner's own logger: its lines (start, ready, signals, stop) are written at once.
_RUNNER = "tapster.runner"


class LogError(Exception):
    """The log destination cannot be opened; the message names it and why."""


class BatchingHandler(logging.Handler):
    """Formats each record when it is logged; writes the lines in batches.

    A line waits at most :data:`FLUSH_INTERVAL` seconds: the first line of a
    batch wakes a writer thread (started when first needed), which waits out
    the interval and writes every line then waiting in one go. Records at
    ``WARNING`` or above, the runner's own (``tapster.runner``: start, ready,
    signals, stop), and every record when ``immediate`` is true, are written
    by the logging thread at once, after the lines before them.

    Locks, always taken in this order: the handler's own ``lock`` (held by
    ``logging.shutdown`` around :meth:`flush` and :meth:`close`), ``_io``
    (held while writing, reopening or rotating, so a batch lands whole in
    one file) and ``_buf`` (held only to append to or take the waiting
    lines; the event loop never waits for a write).
    """

    def __init__(self, immediate: bool = False) -> None:
        super().__init__()
        self.immediate = immediate
        self._lines: list[str] = []
        self._waiting = 0  # characters in _lines
        self._io = threading.RLock()
        self._buf = threading.Lock()
        self._wake = threading.Event()  # a line waits
        self._hurry = threading.Event()  # write now: many lines wait, or stop
        self._halt = False
        self._writer: threading.Thread | None = None
        self._closed = False
        #: Why the last write failed, until one succeeds (``None``: all written).
        self.failure: str | None = None
        #: Whether a failed write is warned about on stderr (off while the runner
        #: starts, which reports a failure itself, as the start-up error).
        self.warn_on_failure = True
        _batching.add(self)

    def handle(self, record: logging.LogRecord) -> bool:
        # Not under the handler's lock (logging's default): emit takes its own.
        passed = self.filter(record)
        if passed:
            self.emit(record if passed is True else passed)  # a filter may return a record
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        self._add(line, record.levelno >= logging.WARNING or record.name == _RUNNER)

    def log_line(self, name: str, level: int, message: str) -> bool:
        """Log ``message`` for logger ``name`` without making a ``LogRecord``, if nothing changes.

        For a hot path whose records only this handler would see (the web
        access log checks that no other handler, filter or record factory is
        in the way): the line is the one a record would give, made directly
        from the fields. Returns False, having logged nothing, when it would
        not be the same (a filter or a level on this handler, a formatter
        not tapster's own) or the line is one to write at once; the caller
        then logs a record as usual.
        """
        formatter = self.formatter
        if (
            self.filters
            or level < self.level
            or level >= logging.WARNING
            or name == _RUNNER
            or type(formatter) not in OWN_FORMATTERS
        ):
            return False
        ns = time.time_ns()
        line = formatter.format_fields(  # type: ignore[union-attr]
            ns / 1e9, (ns % 1_000_000_000) // 1_000_000, logging.getLevelName(level), name, message
        )
        self._add(line + "\n", False)
        return True

    def _add(self, line: str, urgent: bool) -> None:
        """Queue ``line``; write it now when ``urgent``, else within the interval."""
        with self._buf:
            self._lines.append(line)
            self._waiting += len(line)
            waiting = self._waiting
            first = len(self._lines) == 1
            if self._writer is None and not self._closed and not self.immediate:
                self._start_writer()
                first = True  # the new writer waits for a wake-up
        if urgent or self.immediate or self._closed:
            self.flush()
        elif first:
            self._wake.set()
        elif waiting >= _FLUSH_SIZE:
            if waiting >= _HARD_LIMIT:
                self.flush()  # the writer is stuck (a full pipe?): wait like it
            elif not self._hurry.is_set():
                self._hurry.set()

    def flush(self) -> None:
        """Write every waiting line now, in order."""
        with self._io:
            with self._buf:
                lines, self._lines = self._lines, []
                self._waiting = 0
            if lines:
                try:
                    self._write(lines)
                except Exception as exc:
                    self._failed(f"cannot write the log {self._destination()}: {_reason(exc)}")
                else:
                    self.failure = None

    def _failed(self, message: str) -> None:
        """Remember a failed write; warn on stderr at the first of a series."""
        first, self.failure = self.failure is None, message
        if first and self.warn_on_failure:
            _complain(f"{message} (lines are lost until it can be written again)")

    def warn_from_now(self) -> None:
        """Warn about failed writes from now on, starting with one that already happened."""
        self.warn_on_failure = True
        if self.failure is not None:
            _complain(f"{self.failure} (lines are lost until it can be written again)")

    def _write(self, lines: list[str]) -> None:
        """Write ``lines`` (each ending in a newline); ``_io`` is held."""
        raise NotImplementedError

    def _destination(self) -> str:
        return "destination"

    def _start_writer(self) -> None:
        self._halt = False
        self._writer = threading.Thread(
            target=self._run_writer, name="tapster-log-writer", daemon=True
        )
        self._writer.start()

    def _run_writer(self) -> None:
        while True:
            self._wake.wait()
            self._hurry.wait(FLUSH_INTERVAL)
            if self._halt:
                return
            self._wake.clear()
            self._hurry.clear()
            self.flush()

    def stop_writer(self) -> None:
        """Write what waits and end the writer thread (before a fork, or to close)."""
        writer = self._writer
        if writer is not None:
            self._halt = True
            self._hurry.set()
            self._wake.set()
            if writer is not threading.current_thread():
                writer.join()
            self._writer = None
            self._wake.clear()
            self._hurry.clear()
        self.flush()

    def close(self) -> None:
        self._closed = True
        self.stop_writer()
        super().close()

    def _forked(self) -> None:
        """In a child process: no writer thread any more, fresh locks.

        Lines another thread logged between the flush before the fork and the
        fork itself are the parent's to write: the child drops its copy.
        """
        self._writer = None
        self._lines = []
        self._waiting = 0
        self._io = threading.RLock()
        self._buf = threading.Lock()
        self._wake = threading.Event()
        self._hurry = threading.Event()


_batching: weakref.WeakSet[BatchingHandler] = weakref.WeakSet()


def _before_fork() -> None:
    # Nothing waits in memory across a fork (the child would write it again),
    # and no writer thread runs while the process forks.
    for handler in list(_batching):
        with contextlib.suppress(Exception):
            handler.stop_writer()


def _after_fork_in_child() -> None:
    for handler in list(_batching):
        handler._forked()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _complain(message: str) -> None:
    """A line on stderr about logging itself (never through logging: no recursion)."""
    with contextlib.suppress(Exception):
        sys.stderr.write(f"tapster: {message}\n")
        sys.stderr.flush()


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


class BatchingStreamHandler(BatchingHandler):
    """Lines to a text stream (stderr, stdout); at once when the stream is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(immediate=_is_terminal(stream))
        self.stream = stream

    def setStream(self, stream: TextIO) -> None:  # noqa: N802
        """Write to ``stream`` from now on (what waits goes to the old one first)."""
        with self._io:
            self.flush()
            self.stream = stream
            self.immediate = _is_terminal(stream)

    def _write(self, lines: list[str]) -> None:
        self.stream.write("".join(lines))
        self.stream.flush()

    def _destination(self) -> str:
        return getattr(self.stream, "name", "stream")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class ReopeningFileHandler(BatchingHandler):
    """Appends lines to a file that can be reopened and rotated without losing any."""

    def __init__(
        self,
        path: str,
        rotate_size: int | None = None,
        backups: int = 5,
        mode: int = FILE_MODE,
    ) -> None:
        super().__init__()
        self.path = os.path.abspath(path)
        self.mode = mode
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
        """Open the name for appending; rotation stays on only for a regular file.

        A character device (``/dev/null``, ``/dev/console``) or a named pipe
        someone reads is a fine destination, but renaming it away and putting
        a regular file in its place would break the system: rotation is
        switched off for those. A symbolic link, a block device, a pipe
        nobody reads and the rest are refused (see :mod:`tapster.runner._files`).
        """
        fd = open_regular(
            self._name,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT,
            self.mode,
            dir_fd=self._dir_fd,
            streams=True,
        )
        opened = os.fstat(fd)
        self._fd = fd
        self._size = opened.st_size
        self._regular = stat.S_ISREG(opened.st_mode)
        if self.rotate_size and not self._regular:
            self.rotate_size = None
            what = describe_kind(opened.st_mode)
            self.notice = f"log rotation disabled: {self.path} is {what}, not a regular file"

    def _write(self, lines: list[str]) -> None:
        data = "".join(lines).encode("utf-8", "replace")
        if self.rotate_size and self._size + len(data) > self.rotate_size:
            self._write_rotating(lines)
        else:
            self._write_all(data)

    def _write_rotating(self, lines: list[str]) -> None:
        """Write ``lines``, rotating before a line that would make the file too large."""
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            data = line.encode("utf-8", "replace")
            limit = self.rotate_size
            if limit and self._size + size and self._size + size + len(data) > limit:
                self._write_all(b"".join(chunk))
                chunk, size = [], 0
                self._rotate_or_give_up()
            chunk.append(data)
            size += len(data)
        self._write_all(b"".join(chunk))

    def _rotate_or_give_up(self) -> None:
        try:
            self._rotate()
        except OSError as exc:
            # Typically a directory the user we became cannot write: keep
            # appending to the one file rather than failing every line.
            self.rotate_size = None
            notice = f"tapster: log rotation disabled: {exc.strerror or exc}\n"
            self._write_all(notice.encode("utf-8", "replace"))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def _destination(self) -> str:
        return self.path

    def reopen(self) -> None:
        """Close and reopen the file by name (after an external rotation).

        The lines waiting are written to the old file first. Raises
        :class:`LogError` (naming the file and the reason) when the name
        cannot be opened, typically a folder the user the service runs as
        cannot write: lines then keep going to the file already open.
        """
        with self._io:
            self.flush()
            try:
                self._reopen()
            except OSError as exc:
                raise LogError(
                    f"cannot reopen the log file {self.path}: {_reason(exc)}; "
                    "lines keep going to the file open until now"
                ) from None

    def _reopen(self) -> None:
        """Open the name again and switch to it; on ``OSError`` the old file stays in use."""
        old = self._fd
        self._open()
        if self.notice is not None:
            notice, self.notice = self.notice, None
            with contextlib.suppress(OSError):
                os.write(self._fd, f"tapster: {notice}\n".encode("utf-8", "replace"))
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
        """Give the file to the user the process is about to become (see ``_files.hand_over``).

        A device or a pipe keeps its owner; ``OSError`` for a file with other names.
        """
        if self._fd >= 0:
            hand_over(self._fd, uid, gid)

    def close(self) -> None:
        super().close()  # writes what waits
        with self._io:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._dir_fd >= 0:
                os.close(self._dir_fd)
                self._dir_fd = -1
