"""The endpoint description syntax: ``type:positional:key=value``.

``:`` separates arguments, the first unescaped ``=`` in an argument splits a
keyword from its value (the value may contain more ``=``), and a backslash
makes the next character literal (``tcp:80:interface=\\:\\:1``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from tapster.endpoints._errors import EndpointError

_T = TypeVar("_T")


def quote(value: str) -> str:
    """Escape ``value`` so that it reads back as one argument."""
    return "".join("\\" + char if char in "\\:=" else char for char in value)


@dataclass
class Description:
    """A parsed description: its text, type, positional and keyword arguments.

    Parsers consume arguments with :meth:`positional` and :meth:`keyword` (or
    the typed helpers) and finish with :meth:`done`, which rejects anything
    left over, so that a typo never passes silently.
    """

    text: str
    kind: str
    args: list[str] = field(default_factory=list)
    kwargs: dict[str, str] = field(default_factory=dict)

    def error(self, problem: str) -> EndpointError:
        """An ``EndpointError`` for this description."""
        return EndpointError(self.text, problem)

    def take(
        self, key: str, position: int | None = None, aliases: Iterable[str] = ()
    ) -> str | None:
        """Remove and return argument ``key`` (keyword, alias, or the given position)."""
        found: list[tuple[str, str]] = []
        for name in (key, *aliases):
            if name in self.kwargs:
                found.append((name, self.kwargs.pop(name)))
        if position is not None and position < len(self.args) and self.args[position] is not _TAKEN:
            found.append((f"argument {position + 1}", self.args[position]))
            self.args[position] = _TAKEN
        if len(found) > 1:
            raise self.error(f"{key} is given twice ({found[0][0]} and {found[1][0]})")
        return found[0][1] if found else None

    def require(self, key: str, position: int | None = None, aliases: Iterable[str] = ()) -> str:
        """Like :meth:`take`, but the argument must be there."""
        value = self.take(key, position, aliases)
        if value is None:
            where = f" (argument {position + 1} or {key}=...)" if position is not None else ""
            raise self.error(f"missing {key}{where}")
        return value

    def convert(self, key: str, value: str | None, convert: Callable[[str], _T]) -> _T | None:
        """``convert(value)``, turning a ValueError into an EndpointError about ``key``."""
        if value is None:
            return None
        try:
            return convert(value)
        except ValueError as exc:
            raise self.error(f"{key}: {exc}") from None

    def done(self) -> None:
        """Reject arguments nobody took."""
        extra = [arg for arg in self.args if arg is not _TAKEN]
        if extra:
            hint = ""
            if "::" in self.text or "=:" in self.text:
                hint = r" (write ':' inside a value as '\:', e.g. interface=\:\:1)"
            raise self.error(f"unexpected argument {extra[0]!r}{hint}")
        if self.kwargs:
            raise self.error(f"unknown keyword {next(iter(self.kwargs))!r} for type {self.kind!r}")


_TAKEN = "\0taken"


def parse(text: str) -> Description:
    """Split ``text`` into a :class:`Description`; raises EndpointError if malformed."""
    if not isinstance(text, str):
        raise EndpointError(repr(text), "an endpoint description must be a string")
    segments: list[tuple[str, str | None]] = []
    current: list[str] = []
    key: str | None = None
    chars = iter(text)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise EndpointError(text, "a backslash at the end escapes nothing")
            current.append(escaped)
        elif char == ":":
            segments.append(_segment(key, current))
            current, key = [], None
        elif char == "=" and key is None:
            key, current = "".join(current), []
        else:
            current.append(char)
    segments.append(_segment(key, current))
    first, first_value = segments[0]
    if first_value is not None:
        raise EndpointError(text, "a description starts with its type, e.g. 'tcp:8080'")
    if not first:
        raise EndpointError(text, "the endpoint type is missing, e.g. 'tcp:8080'")
    description = Description(text=text, kind=first)
    for name, value in segments[1:]:
        if value is None:
            description.args.append(name)
            continue
        if not name:
            raise EndpointError(text, f"keyword argument '={value}' has no name")
        if name in description.kwargs:
            raise EndpointError(text, f"keyword {name!r} is given twice")
        description.kwargs[name] = value
    return description


def _segment(key: str | None, current: list[str]) -> tuple[str, str | None]:
    value = "".join(current)
    if key is None:
        return value, None
    return key, value
