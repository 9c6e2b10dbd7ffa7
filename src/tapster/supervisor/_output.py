"""Workers' log lines into the supervisor's one log, whole and marked with the worker.

Each worker logs to its stderr, a pipe of its own that the supervisor reads,
in the configured format. Lines are passed on only once whole (a line never
meets another worker's mid-way: each worker has its own pipe), with the
worker's mark added:

* text: ``2026-01-31 12:00:00.123 INFO [worker 2] tapster.web.access: ...``;
  the lines that continue a record (a traceback) are passed on as they are;
* json: ``{"worker": 2, "time": ...}``; anything else the worker wrote to
  stderr (an interpreter's crash report, a stack dump) becomes a record of
  its own, so the file stays one JSON object a line.

With a batching destination (a file, stderr, stdout) the marked lines join its
batches directly, without being parsed into records again; any other handler
(syslog, which workers normally use themselves) gets one record per line.
"""

from __future__ import annotations

import logging
import re
import time

from tapster.runner._log_formats import OWN_FORMATTERS, JsonFormatter
from tapster.runner._log_handlers import BatchingHandler
from tapster.supervisor._channel import LineSplitter

__all__ = ["WorkerOutput"]

_TEXT_HEADER = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ([A-Z]+) ")
_URGENT_LEVELS = (b"WARNING", b"ERROR", b"CRITICAL")
_JSON_URGENT = re.compile(rb'"level": "(?:WARNING|ERROR|CRITICAL)"')
_JSON_HEAD = b'{"time": '
_STRAY_LOGGER = "tapster.worker"


class WorkerOutput:
    """Splits one worker's output into lines and hands them, marked, to ``handler``."""

    def __init__(self, handler: logging.Handler | None, number: int, pid: int) -> None:
        self.pid = pid
        self._handler = handler
        self._batcher = handler if isinstance(handler, BatchingHandler) else None
        self._splitter = LineSplitter()
        formatter = handler.formatter if handler is not None else None
        self._batching = isinstance(handler, BatchingHandler) and type(formatter) in OWN_FORMATTERS
        self._json = isinstance(formatter, JsonFormatter)
        self.renumber(number)
        #: While not None, lines are also kept here (a stack dump being collected).
        self.capture: list[str] | None = None

    def renumber(self, number: int) -> None:
        """Mark the lines from now on with worker ``number`` (0: a spare, not serving yet)."""
        self.number = number
        self._mark = f"[worker {number}] ".encode() if number else b"[spare] "
        self._json_mark = b'{"worker": ' + (str(number).encode() if number else b"null") + b", "

    def feed(self, data: bytes) -> None:
        """Pass on the lines ``data`` completes."""
        self._pass(self._splitter.feed(data))

    def close(self) -> None:
        """Pass on what is left (the worker is gone)."""
        rest = self._splitter.rest()
        if rest:
            self._pass([rest])

    def _pass(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if self.capture is not None:  # a stack dump: the supervisor logs it in one record
            self.capture.extend(line.decode("utf-8", "replace") for line in lines)
            return
        if not self._batching:
            for line in lines:
                self._as_record(line)
            return
        out: list[bytes] = []
        urgent = False
        for line in lines:
            marked, hot = self._marked(line)
            if marked is None:
                self._flush(out, urgent)
                out, urgent = [], False
                self._as_record(line)
                continue
            out.append(marked)
            urgent = urgent or hot
        self._flush(out, urgent)

    def _marked(self, line: bytes) -> tuple[bytes | None, bool]:
        """The line with the worker's mark and whether it is urgent; None: make a record of it."""
        if self._json:
            if line.startswith(_JSON_HEAD):
                return self._json_mark + line[1:], bool(_JSON_URGENT.search(line, 0, 200))
            return None, False
        header = _TEXT_HEADER.match(line)
        if header is None:
            return line, False
        at = header.end(1) + 1
        return line[:at] + self._mark + line[at:], header.group(1) in _URGENT_LEVELS

    def _flush(self, lines: list[bytes], urgent: bool) -> None:
        if lines:
            text = b"\n".join(lines).decode("utf-8", "replace") + "\n"
            assert self._batcher is not None
            self._batcher._add(text, urgent)

    def _as_record(self, line: bytes) -> None:
        """Log a line that is not one of the worker's records, as a record of the supervisor's."""
        if self._handler is None or not line.strip():
            return
        now = time.time()
        record = logging.LogRecord(
            _STRAY_LOGGER,
            logging.WARNING,
            __file__,
            0,
            "%s",
            (line.decode("utf-8", "replace").rstrip(),),
            None,
        )
        record.created = now
        record.msecs = (now % 1) * 1000
        record.process = self.pid
        if self._json and self._batcher is not None:
            text = self._batcher.format(record)
            self._batcher._add(self._json_mark.decode() + text[1:] + "\n", True)
            return
        record.name = self._mark.decode() + _STRAY_LOGGER
        self._handler.handle(record)
