"""``Range`` header parsing and ``multipart/byteranges`` framing (RFC 9110 14).

Syntax errors and unknown units make the header ignored (the full body is
sent), as the RFC allows; satisfiable ranges are sorted and overlapping or
adjacent ones merged, so a client cannot make the server send a file many
times over in one response. A position may have any number of digits (the
grammar sets no limit): one too long to be an offset into any file is read as
"past the end", without ever becoming a Python ``int`` (whose conversion
refuses strings of more than 4300 digits).
"""

from __future__ import annotations

import os

#: More ranges than this in one request and the header is ignored.
MAX_RANGES = 16

#: Significant digits beyond which a position is past the end of any file
#: (2**63 - 1, the largest file offset, has 19).
_MAX_DIGITS = 19
#: What such a position reads as: larger than any file size.
_PAST_END = 1 << 64

#: One boundary per process: random, so no file can forge a part delimiter by chance.
BOUNDARY = "tapster-" + os.urandom(12).hex()


class UnsatisfiableError(Exception):
    """No requested range overlaps the body: the answer is 416."""


def parse_range(value: bytes, size: int) -> list[tuple[int, int]] | None:
    """The (first, last) byte positions asked for, or ``None`` to ignore the header.

    Raises ``UnsatisfiableError`` when the header is valid but no range fits ``size``.
    """
    unit, sep, spec = value.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes":
        return None
    items = spec.split(b",")
    if len(items) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for raw_item in items:
        item = raw_item.strip()
        if not item:
            continue
        first_s, dash, last_s = item.partition(b"-")
        if not dash:
            return None
        first_s, last_s = first_s.strip(), last_s.strip()
        if not (first_s.isdigit() or not first_s) or not (last_s.isdigit() or not last_s):
            return None
        if not first_s:
            if not last_s:
                return None
            suffix = _position(last_s)
            if suffix == 0 or size == 0:
                continue
            ranges.append((max(0, size - suffix), size - 1))
            continue
        if last_s and _digits_less(last_s, first_s):
            return None
        first = _position(first_s)
        last = _position(last_s) if last_s else max(first, size - 1)
        if first >= size:
            continue
        ranges.append((first, min(last, size - 1)))
    if not ranges:
        raise UnsatisfiableError
    ranges.sort()
    merged = [ranges[0]]
    for first, last in ranges[1:]:
        prev_first, prev_last = merged[-1]
        if first <= prev_last + 1:
            merged[-1] = (prev_first, max(prev_last, last))
        else:
            merged.append((first, last))
    return merged


def _significant(digits: bytes) -> bytes:
    return digits.lstrip(b"0") or b"0"


def _position(digits: bytes) -> int:
    """The value of an ASCII digit string, or ``_PAST_END`` when it has too many digits."""
    significant = _significant(digits)
    if len(significant) > _MAX_DIGITS:
        return _PAST_END
    return int(significant)


def _digits_less(a: bytes, b: bytes) -> bool:
    """``int(a) < int(b)`` for ASCII digit strings of any length, without converting them."""
    a, b = _significant(a), _significant(b)
    return (len(a), a) < (len(b), b)


def part_head(content_type: str, first: int, last: int, size: int) -> bytes:
    """The delimiter and headers that open one part of a multipart/byteranges body."""
    return (
        f"\r\n--{BOUNDARY}\r\nContent-Type: {content_type}\r\n"
        f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
    ).encode("latin-1")


CLOSING = f"\r\n--{BOUNDARY}--\r\n".encode("ascii")
MULTIPART_TYPE = f"multipart/byteranges; boundary={BOUNDARY}"
