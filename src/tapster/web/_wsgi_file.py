"""``wsgi.file_wrapper``: a file the application returns goes out with sendfile when it can.

An application returns ``environ["wsgi.file_wrapper"](file, block_size)``. When the
file is a regular file with a descriptor, the response body becomes a ``FileSpan``
over that open file, from its current position, and the protocol sends it the way
it sends static files (sendfile on plain TCP; blocks through TLS). Anything else (a
pipe, a ``BytesIO``) is an ordinary iterable of blocks. Either way the wrapper's
``close()`` runs once the body is out, in a worker thread (it may be the
application's own clean-up, as with Django's responses).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

from ._http import FileSpan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO


class FileWrapper:
    """What ``wsgi.file_wrapper`` makes: an iterable of blocks of ``filelike``."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        """Close the file (PEP 3333: the server calls this once the body is sent)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def file_span(wrapper: FileWrapper, declared: int | None) -> FileSpan | None:
    """The span to send from ``wrapper``'s file, or ``None`` when it must be iterated.

    ``declared``: the application's ``Content-Length``; a span is made only when the
    file holds that much from its current position (else the short body must show).
    """
    filelike = wrapper.filelike
    try:
        fd = filelike.fileno()
        info = os.fstat(fd)
        offset = filelike.tell()
    except (AttributeError, OSError, ValueError, TypeError):
        return None
    if not stat.S_ISREG(info.st_mode) or not isinstance(offset, int):
        return None
    remaining = max(0, info.st_size - offset)
    count = remaining if declared is None else declared
    if count > remaining:
        return None
    name = getattr(filelike, "name", None)
    path = name if isinstance(name, str) else f"<fd {fd}>"
    file: BinaryIO = filelike
    return FileSpan(path, offset, count, file=file)


class FileBody(list[bytes | FileSpan]):
    """A response body of one open-file span whose owner is told when it is sent.

    The protocol sends list bodies part by part and calls a body's ``aclose`` once
    it is done with it, sent or not; that hands ``release`` (the wrapper's
    ``close``, to a worker thread) the word.
    """

    def __init__(self, span: FileSpan, release: Callable[[], None]) -> None:
        super().__init__((span,))
        self._release: Callable[[], None] | None = release

    async def aclose(self) -> None:
        """The protocol is done with the file: release it (once)."""
        self.release()

    def release(self) -> None:
        """Release the file now (once), from any thread the caller is on."""
        release, self._release = self._release, None
        if release is not None:
            release()

    close = release
