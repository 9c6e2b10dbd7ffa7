"""Coercers for ``parameters`` rows: turn the text of a value into what it means.

A coercer is any callable taking the text and returning the value; it raises
``ValueError`` with a short reason when the text is wrong (the parser turns that
into a :class:`~tapster.usage.UsageError` naming the option and the value). It
may carry ``coerce_doc`` (a sentence shown in ``--help``), ``metavar`` (the
value's placeholder in ``--help``, e.g. ``FILE``) and ``completion`` (``"file"``,
``"dir"`` or a tuple of choices, used by shell completion) and ``secret`` (see
:func:`secret`).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])


def documented(
    coerce_doc: str | None,
    completion: str | tuple[str, ...] | None = None,
    metavar: str | None = None,
) -> Callable[[F], F]:
    """Attach ``coerce_doc`` (and a completion hint, a help placeholder) to a coercer.

    ``None`` leaves out what a coercer does not have (a path kept as typed needs
    no sentence in ``--help``, only a placeholder).
    """

    def attach(function: F) -> F:
        if coerce_doc is not None:
            function.coerce_doc = coerce_doc  # type: ignore[attr-defined]
        if completion is not None:
            function.completion = completion  # type: ignore[attr-defined]
        if metavar is not None:
            function.metavar = metavar  # type: ignore[attr-defined]
        return function

    return attach


def secret(mask: Callable[[str], str] | None = None) -> Callable[[F], F]:
    """Mark a coercer or an ``opt_*`` handler's option as secret.

    ``tapster --print-config`` then shows its values as ``***``, or as ``mask(value)``
    when given (``memory:***`` keeps the part that is not secret).
    """

    def attach(function: F) -> F:
        function.secret = mask or True  # type: ignore[attr-defined]
        return function

    return attach


def _integer(text: str, what: str, too_big: str) -> int:
    """Plain ASCII decimal only: no ``_``, no other scripts' digits, no huge numbers."""
    stripped = text.strip()
    digits = stripped[1:] if stripped[:1] in "+-" else stripped
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"expected {what}")
    if len(digits.lstrip("0")) > 18:
        raise ValueError(too_big)
    return int(stripped)


@documented("A port number, 0-65535.", metavar="PORT")
def port(text: str) -> int:
    """A TCP or UDP port number, 0-65535 (0 lets the system pick one)."""
    out_of_range = "a port number is between 0 and 65535"
    number = _integer(text, "a port number (0-65535)", out_of_range)
    if not 0 <= number <= 65535:
        raise ValueError(out_of_range)
    return number


@documented("A positive integer.")
def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    number = _integer(text, "a positive integer", "that number is too large")
    if number < 1:
        raise ValueError("expected a positive integer (1 or more)")
    return number


@documented("An octal file mode, e.g. 0644.", metavar="MODE")
def octal_mode(text: str) -> int:
    """A file mode written in octal (``644``, ``0644`` or ``0o644``), at most 07777."""
    digits = text.strip().lower()
    if digits.startswith("0o"):
        digits = digits[2:]
    if not digits or any(c not in "01234567" for c in digits):
        raise ValueError("expected an octal file mode such as 0644")
    mode = int(digits, 8)
    if mode > 0o7777:
        raise ValueError("a file mode is at most 07777")
    return mode


@documented("The path of an existing file.", "file", "FILE")
def existing_file(text: str) -> str:
    """The path of a file that exists (and is not a directory); returned unchanged."""
    if not text:
        raise ValueError("expected the path of a file")
    if not os.path.exists(text):
        raise ValueError("no such file")
    if os.path.isdir(text):
        raise ValueError("is a directory, expected a file")
    return text


@documented("The path of an existing directory.", "dir", "DIR")
def existing_dir(text: str) -> str:
    """The path of a directory that exists; returned unchanged."""
    if not text:
        raise ValueError("expected the path of a directory")
    if not os.path.exists(text):
        raise ValueError("no such directory")
    if not os.path.isdir(text):
        raise ValueError("not a directory")
    return text


def choice(*values: str) -> Callable[[str], str]:
    """A coercer accepting exactly one of ``values`` (also offered by completion)."""
    if not values:
        raise TypeError("choice() needs at least one value")
    allowed = tuple(values)
    listed = ", ".join(allowed)

    @documented(f"One of: {listed}.", allowed)
    def one_of(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of: {listed}")
        return text

    return one_of
