"""Log line formats: ``text`` (time, level, logger, message) and ``json`` (one object a line).

Both format the date and time once per second (with a table for the
milliseconds), since a busy server logs many lines within one second and
``time.strftime`` costs as much as the rest of a line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

__all__ = ["OWN_FORMATTERS", "JsonFormatter", "TextFormatter"]


class _Seconds:
    """A date and time to the second, formatted once per second (for many lines)."""

    __slots__ = ("_convert", "_format", "_last")

    def __init__(self, format: str, convert: Callable[[float], time.struct_time]) -> None:
        self._format = format
        self._convert = convert
        self._last: tuple[int, str] = (-1, "")  # one attribute: threads read it whole

    def text(self, created: float) -> str:
        """``created`` (seconds since the epoch) to the second, in the format."""
        second = int(created)
        last = self._last
        if last[0] != second:
            last = (second, time.strftime(self._format, self._convert(second)))
            self._last = last
        return last[1]


class TextFormatter(logging.Formatter):
    """``2026-01-31 12:00:00.123 INFO tapster.runner: message`` (local time).

    The date and time up to the second are formatted once per second: on a
    busy server that is most of the cost of a line.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        # Looked up at each new second: a converter set later (time.gmtime) still counts.
        convert = lambda second: self.converter(second)  # noqa: E731, PLW0108
        self._seconds = _Seconds("%Y-%m-%d %H:%M:%S", convert)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return self._stamp(record.created, record.msecs)

    def _stamp(self, created: float, msecs: float) -> str:
        return self._seconds.text(created) + _MILLIS[int(msecs)]

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = _joined(line, record.exc_text)
        if record.stack_info:
            line = _joined(line, self.formatStack(record.stack_info))
        return line

    def format_fields(
        self, created: float, msecs: float, level: str, name: str, message: str
    ) -> str:
        """The line :meth:`format` makes of a record with these fields (and no exception)."""
        return f"{self._stamp(created, msecs)} {level} {name}: {message}"


_MILLIS = tuple(f".{n:03d}" for n in range(1000))


def _joined(line: str, more: str) -> str:
    return f"{line}{more}" if line.endswith("\n") else f"{line}\n{more}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``."""

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _Seconds("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        exception = None
        if record.exc_info:
            exception = self.formatException(record.exc_info)
        elif record.exc_text:
            exception = record.exc_text
        return self._line(
            record.created,
            record.msecs,
            record.levelname,
            record.name,
            record.getMessage(),
            pid=record.process,
            exception=exception,
        )

    def format_fields(
        self, created: float, msecs: float, level: str, name: str, message: str
    ) -> str:
        """The line :meth:`format` makes of a record with these fields (this process)."""
        return self._line(created, msecs, level, name, message, pid=os.getpid(), exception=None)

    def _line(
        self,
        created: float,
        msecs: float,
        level: str,
        name: str,
        message: str,
        *,
        pid: int | None,
        exception: str | None,
    ) -> str:
        import json  # cached after the first line; text logs never pay for it

        data: dict[str, object] = {
            "time": f"{self._seconds.text(created)}{_MILLIS[int(msecs)]}Z",
            "level": level,
            "logger": name,
            "message": message,
            "pid": pid,
        }
        if exception is not None:
            data["exception"] = exception
        return json.dumps(data, ensure_ascii=False, default=str)


#: The formatters whose output a handler may build without a record (see ``log_line``).
OWN_FORMATTERS = (TextFormatter, JsonFormatter)
