"""``Range`` header parsing and ``multipart/byteranges`` framing (RFC 9110 14).

Syntax errors and unknown units make the header ignored (the full body is
sent), as the RFC allows; satisfiable ranges are sorted and overlapping or
adjacent ones merged, so a client cannot make the server send a file many
times over in one response.
"""

from __future__ import annotations

import os

#: More ranges than this in one request and the header is ignored.
MAX_RANGES = 16

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
            suffix = int(last_s)
            if suffix == 0 or size == 0:
                continue
            ranges.append((max(0, size - suffix), size - 1))
            continue
        first = int(first_s)
        last = int(last_s) if last_s else max(first, size - 1)
        if last < first:
            return None
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


def part_head(content_type: str, first: int, last: int, size: int) -> bytes:
    """The delimiter and headers that open one part of a multipart/byteranges body."""
    return (
        f"\r\n--{BOUNDARY}\r\nContent-Type: {content_type}\r\n"
        f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
    ).encode("latin-1")


CLOSING = f"\r\n--{BOUNDARY}--\r\n".encode("ascii")
MULTIPART_TYPE = f"multipart/byteranges; boundary={BOUNDARY}"
