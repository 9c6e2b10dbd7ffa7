"""Turning a request path into folder-relative segments, refusing every escape.

The rules, in order: percent-decoding must give valid UTF-8; no segment may be
``.`` or ``..`` (literal or encoded); no byte may be NUL, a backslash or an
encoded slash; empty segments (``//``) are dropped. What survives can only name
something below the served folder -- symlinks are checked separately, against
the real path, by the static file handler.
"""

from __future__ import annotations

import os
from urllib.parse import unquote_to_bytes


class BadPathError(ValueError):
    """The request path is not acceptable; the message is safe to show a client."""


def split_path(raw: bytes) -> tuple[tuple[str, ...], bool]:
    """Decode ``raw`` (the path part of a request target) into safe segments.

    Returns the segments and whether the path ended with ``/``. Raises
    ``BadPathError`` for anything that could step outside the served folder.
    """
    if not raw.startswith(b"/"):
        raise BadPathError("the request path must start with '/'")
    segments: list[str] = []
    for piece in raw.split(b"/"):
        if not piece:
            continue
        part = unquote_to_bytes(piece) if b"%" in piece else piece
        if part in (b".", b".."):
            raise BadPathError("the request path must not contain '.' or '..' segments")
        if b"\x00" in part or b"\\" in part or b"/" in part:
            raise BadPathError("the request path contains a forbidden character")
        try:
            text = part.decode("utf-8")
        except UnicodeDecodeError:
            raise BadPathError("the request path is not valid UTF-8") from None
        segments.append(text)
    return tuple(segments), raw.endswith(b"/")


def is_within(root_real: str, path_real: str) -> bool:
    """Whether ``path_real`` is ``root_real`` or below it (both already resolved)."""
    return path_real == root_real or path_real.startswith(root_real.rstrip(os.sep) + os.sep)
