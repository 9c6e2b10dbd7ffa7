"""Content types by file name: the standard table plus the user's ``--mime-type``.

Only Python's built-in table is used (never the host's ``/etc/mime.types``), so
a file gets the same type on every machine.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping

_DEFAULT = "application/octet-stream"

#: Compressed files are served as what they are, never with Content-Encoding
#: (a browser would otherwise unpack a download behind the user's back).
_ENCODED_AS = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/octet-stream",
}

#: Common types that older Python tables lack (3.11 knows none of these); the
#: user's ``--mime-type`` still wins over them.
_MODERN = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".avif": "image/avif",
    ".webp": "image/webp",
}

#: Types worth compressing on the fly besides ``text/*``.
_COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/xhtml+xml",
        "application/manifest+json",
        "application/ld+json",
        "image/svg+xml",
    }
)


class MimeTable:
    """Maps file names to content types, with user overrides by extension."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self._db = mimetypes.MimeTypes(filenames=())
        self._overrides = dict(_MODERN)
        self._overrides.update(
            ("." + ext.lower().lstrip("."), ctype) for ext, ctype in (overrides or {}).items()
        )

    def guess(self, name: str) -> str:
        """The content type for file ``name``."""
        dot = name.rfind(".")
        if dot >= 0:
            override = self._overrides.get(name[dot:].lower())
            if override is not None:
                return override
        ctype, encoding = self._db.guess_type(name, strict=False)
        if encoding is not None:
            return _ENCODED_AS.get(encoding, _DEFAULT)
        return ctype or _DEFAULT


def compressible(content_type: str) -> bool:
    """Whether gzip is likely to shrink a body of ``content_type``."""
    base = content_type.split(";", 1)[0].strip().lower()
    return base.startswith("text/") or base in _COMPRESSIBLE or base.endswith("+json")
