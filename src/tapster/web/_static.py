"""Static files: URL to file resolution, caching, conditionals, ranges and gzip.

Hot path: a URL seen less than ``REVALIDATE`` seconds ago maps straight to its
cached file record; an ``os.stat`` confirms the file is unchanged (same inode,
size and modification time) and the prebuilt headers plus, for small files,
the body in memory are answered without any further work. Everything slower
-- first reads, compression, listings -- runs in worker threads.

The one trick here: a file is stat'ed at most once per turn of the event loop
(``_Turns``). Under load one turn answers the requests of many connections, and
the ``stat`` (a system call and a result object, about a tenth of a cached
answer's cost) was paid by each of them; now by the first. A change made before
a turn begins is seen by every answer in that turn and later ones.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import time
from urllib.parse import quote

from tapster._lazy import import_later

from . import _gzip, _ranges
from ._config import WebConfig
from ._http import (
    Answer,
    FileSpan,
    Request,
    Response,
    error_response,
    header_block,
    http_date,
    parse_http_date,
    resolve,
)
from ._mime import MimeTable, compressible
from ._paths import BadPathError, is_within, split_path

# Imported on first use (a listing), not when the server starts.
import_later("tapster.web._listing")

log = logging.getLogger("tapster.web")

#: Files up to this size are kept in memory once read (for TLS, gzip and small answers).
SMALL_FILE = 1024 * 1024
#: Bodies (whole files or ranges) from this size go out with sendfile where the connection
#: allows (plain TCP): the kernel sends from its page cache, nothing is copied through
#: Python. Smaller ones are written from memory with their head in one write: fewer system
#: calls than open, sendfile and close, and no release of the GIL to a log writer thread
#: in between; below about 100 KiB that costs less (measured in docs/benchmarks.md).
SENDFILE_FROM = 128 * 1024
#: Total bytes of file bodies kept in memory.
BODY_BUDGET = 64 * 1024 * 1024
#: Seconds a URL's resolution (symlink and index checks) is trusted before it is redone.
REVALIDATE = 1.0
#: Distinct URLs remembered; the table is cleared when it grows past this.
MAX_URLS = 20000

_ALLOW = [("Allow", "GET, HEAD")]


class _File:
    """A served file at one version, with its response headers prebuilt."""

    __slots__ = (
        "body",
        "common",
        "confirmed",
        "content_type",
        "etag",
        "etag_gz",
        "full",
        "key",
        "last_modified",
        "mtime",
        "offer_gzip",
        "path",
        "size",
    )

    def __init__(self, path: str, st: os.stat_result, content_type: str, offer_gzip: bool) -> None:
        self.path = path
        self.key = (st.st_ino, st.st_mtime_ns, st.st_size)
        self.size = st.st_size
        self.mtime = int(st.st_mtime)
        self.content_type = content_type
        #: Answer gzip to clients that accept it (so say ``Vary: Accept-Encoding``):
        #: gzip is on and the type compresses. Turned off for a version that
        #: changed while it was read for compression.
        self.offer_gzip = offer_gzip
        tag = f"{st.st_mtime_ns:x}-{st.st_size:x}"
        self.etag = f'"{tag}"'
        self.etag_gz = f'"{tag}-gz"'
        self.last_modified = http_date(self.mtime)
        self.common = header_block(
            [
                ("Content-Type", content_type),
                ("Last-Modified", self.last_modified),
                ("Accept-Ranges", "bytes"),
                *([("Vary", "Accept-Encoding")] if offer_gzip else []),
            ]
        )
        self.full = self.common + header_block(
            [("ETag", self.etag), ("Content-Length", str(self.size))]
        )
        self.body: bytes | None = None
        #: The loop turn (``_Turns.number``) in which a ``stat`` last found this version.
        self.confirmed = -1


class _Turns:
    """Counts turns of the event loop, so a ``stat`` can be reused within one.

    ``begin_confirming`` is called when a turn first relies on a fresh ``stat``: it
    schedules ``_next`` with ``call_soon``, which runs at the start of the next turn,
    before any callback that turn's I/O brings (uvloop and asyncio alike). Nothing
    is scheduled while the server is idle.
    """

    __slots__ = ("_scheduled", "number")

    def __init__(self) -> None:
        self.number = 0
        self._scheduled = False

    def begin_confirming(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._next)

    def _next(self) -> None:
        self.number += 1
        self._scheduled = False


class _Route:
    """What a URL resolved to, and when."""

    __slots__ = ("checked", "kind", "path")

    def __init__(self, kind: str, path: str, checked: float) -> None:
        self.kind = kind  # "file" or "dir"
        self.path = path
        self.checked = checked


class RootFolderError(ValueError):
    """The folder to serve is missing or is not a folder when the server starts."""


class StaticFiles:
    """Answers GET and HEAD for the files below ``config.root``.

    With ``fallthrough`` set (a WSGI application is configured too), a URL that
    names no file gives ``None`` so the caller can pass the request on.
    """

    def __init__(self, config: WebConfig, fallthrough: bool = False) -> None:
        if config.root is None:
            raise ValueError("StaticFiles needs a root folder")
        self._root = os.path.abspath(config.root)
        self._root_real = os.path.realpath(self._root)
        self._indexes = config.indexes
        self._listing = config.listing
        self._follow = config.follow_symlinks
        self._gzip = config.gzip
        self._mime = MimeTable(config.mime_types)
        self._fallthrough = fallthrough
        self._routes: dict[bytes, _Route] = {}
        self._files: dict[str, _File] = {}
        self._body_bytes = 0
        self._gz = _gzip.GzipCache()
        self._reading: dict[str, asyncio.Future[tuple[os.stat_result, bytes]]] = {}
        self._turns = _Turns()

    def start(self) -> None:
        """Check the root folder as the running server sees it (after any chroot).

        Raises ``RootFolderError`` rather than answering every request with 404.
        """
        try:
            st = os.stat(self._root)
        except OSError as exc:
            problem = (
                "does not exist" if exc.errno == errno.ENOENT else f"cannot be used: {exc.strerror}"
            )
            raise RootFolderError(f"the folder to serve {self._root} {problem}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise RootFolderError(f"the folder to serve {self._root} is not a folder")
        self._root_real = os.path.realpath(self._root)
        self._routes.clear()

    # -- entry point -------------------------------------------------------------

    def handle(self, req: Request) -> Answer | None:
        """The response for ``req``, an awaitable of it, or ``None`` (not ours)."""
        method = req.method
        if method not in {"GET", "HEAD"}:
            if self._fallthrough:
                return None
            return error_response(405, "Only GET and HEAD are allowed here.", _ALLOW)
        route = self._routes.get(req.path)
        if (
            route is not None
            and route.kind == "file"
            and time.monotonic() - route.checked < REVALIDATE
        ):
            f = self._files.get(route.path)
            if f is not None:
                turns = self._turns
                if f.confirmed == turns.number:
                    return self._serve(req, f)  # stat'ed earlier in this turn of the loop
                try:
                    st = os.stat(f.path)
                except OSError:
                    pass
                else:
                    if (st.st_ino, st.st_mtime_ns, st.st_size) == f.key and (
                        f.body is not None or f.size > SMALL_FILE
                    ):
                        f.confirmed = turns.number
                        turns.begin_confirming()
                        return self._serve(req, f)
        return self._slow(req)

    # -- resolution --------------------------------------------------------------

    def _allowed(self, path: str) -> bool:
        return self._follow or is_within(self._root_real, os.path.realpath(path))

    def _slow(self, req: Request) -> Answer | None:
        try:
            segments, slash = split_path(req.path)
        except BadPathError as exc:
            return error_response(400, str(exc))
        path = os.path.join(self._root, *segments)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return self._not_found()
        except PermissionError:
            return error_response(403, "You may not read this.")
        except (OSError, ValueError):
            return self._not_found()
        if not self._allowed(path):
            return self._not_found()
        if stat.S_ISDIR(st.st_mode):
            if not slash:
                location = "/" + "".join(quote(s) + "/" for s in segments)
                if req.query:
                    location += "?" + req.query.decode("latin-1")
                return error_response(
                    301, "This folder moved.", [("Location", location)], head=req.method == "HEAD"
                )
            for name in self._indexes:
                candidate = os.path.join(path, name)
                try:
                    ist = os.stat(candidate)
                except OSError:
                    continue
                if stat.S_ISREG(ist.st_mode) and self._allowed(candidate):
                    return self._file(req, candidate, ist)
            if not self._listing:
                if self._fallthrough:
                    return None
                return error_response(403, "Directory listing is disabled.")
            return self._list(req, path, "/" + "".join(s + "/" for s in segments))
        if not stat.S_ISREG(st.st_mode) or slash:
            return self._not_found()
        return self._file(req, path, st)

    def _not_found(self) -> Response | None:
        if self._fallthrough:
            return None
        return error_response(404, "Nothing here.")

    def _remember(self, raw: bytes, kind: str, path: str) -> None:
        if len(self._routes) >= MAX_URLS:
            self._routes.clear()
        self._routes[raw] = _Route(kind, path, time.monotonic())

    def _file(self, req: Request, path: str, st: os.stat_result) -> Answer:
        f = self._files.get(path)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if f is None or f.key != key:
            ctype = self._mime.guess(os.path.basename(path))
            f = _File(path, st, ctype, self._gzip and compressible(ctype))
            self._drop_body(path)
            if len(self._files) >= MAX_URLS:
                self._files.clear()
                self._body_bytes = 0
            self._files[path] = f
        self._remember(req.path, "file", path)
        if f.size <= SMALL_FILE and f.body is None:
            return self._load_then_serve(req, f)
        return self._serve(req, f)

    def _drop_body(self, path: str) -> None:
        old = self._files.get(path)
        if old is not None:
            self._forget_body(old)

    def _forget_body(self, f: _File) -> None:
        """Drop ``f``'s body from memory; it must be read again (and confirmed) to serve."""
        if f.body is not None:
            self._body_bytes -= len(f.body)
            f.body = None
            f.confirmed = -1

    async def _load_then_serve(self, req: Request, f: _File) -> Response:
        # One read per file version, however many requests arrive meanwhile.
        reading = self._reading.get(f.path)
        if reading is None:
            loop = asyncio.get_running_loop()
            reading = self._reading[f.path] = loop.run_in_executor(None, _read_small, f.path)
            reading.add_done_callback(_gzip.forget(self._reading, f.path))
        try:
            st, data = await asyncio.shield(reading)
        except OSError:
            return error_response(404, "Nothing here.")
        if (st.st_ino, st.st_mtime_ns, st.st_size) != f.key or len(data) != st.st_size:
            f = _File(f.path, st, f.content_type, f.offer_gzip)
            self._drop_body(f.path)
            self._files[f.path] = f
        if f.body is None:
            f.body = data
            self._body_bytes += len(data)
            if self._body_bytes > BODY_BUDGET:
                self._evict(keep=f)
        return await resolve(self._serve(req, f))

    def _evict(self, keep: _File) -> None:
        for other in list(self._files.values()):
            if self._body_bytes <= BODY_BUDGET // 2:
                break
            if other is not keep:
                self._forget_body(other)

    # -- answering ---------------------------------------------------------------

    def _serve(self, req: Request, f: _File) -> Answer:
        head = req.method == "HEAD"
        use_gzip = False
        headers = req.header_map()
        rng = headers.get(b"range")
        if (
            f.offer_gzip
            and _gzip.MIN_SIZE <= f.size <= _gzip.MAX_SIZE
            and rng is None
            and _gzip.accepts_gzip(headers.get(b"accept-encoding"))
        ):
            packed = self._gz.get((f.path, f.key[1], f.size))
            if packed is None:
                return self._compress_then_serve(req, f)
            use_gzip = bool(packed)
        etag = f.etag_gz if use_gzip else f.etag
        inm = headers.get(b"if-none-match")
        if inm is not None:
            if _etag_matches(inm, etag):
                return self._not_modified(f, etag)
        else:
            ims = headers.get(b"if-modified-since")
            if ims is not None:
                since = parse_http_date(ims.decode("latin-1"))
                if since is not None and f.mtime <= since:
                    return self._not_modified(f, etag)
        if use_gzip:
            packed = self._gz.get((f.path, f.key[1], f.size)) or b""
            block = f.common + header_block(
                [
                    ("ETag", etag),
                    ("Content-Encoding", "gzip"),
                    ("Content-Length", str(len(packed))),
                ]
            )
            return Response(200, block, b"" if head else packed, len(packed))
        if rng is not None and not head:
            partial = self._partial(req, f, rng)
            if partial is not None:
                return partial
        if head:
            return Response(200, f.full, b"", f.size)
        body = f.body
        if body is not None and f.size < SENDFILE_FROM:
            return Response(200, f.full, body, f.size)
        return Response(200, f.full, [FileSpan(f.path, 0, f.size, data=body)], f.size)

    def _not_modified(self, f: _File, etag: str) -> Response:
        headers = header_block(
            [("ETag", etag), ("Last-Modified", f.last_modified)]
            + ([("Vary", "Accept-Encoding")] if f.offer_gzip else [])
        )
        return Response(304, headers, b"", 0)

    def _partial(self, req: Request, f: _File, rng: bytes) -> Response | None:
        if_range = req.get(b"if-range")
        if if_range is not None:
            value = if_range.strip().decode("latin-1")
            if value.startswith('"'):
                if value != f.etag:
                    return None
            elif value != f.last_modified:
                return None
        try:
            ranges = _ranges.parse_range(rng, f.size)
        except _ranges.UnsatisfiableError:
            return error_response(
                416,
                "The requested range is outside the file.",
                [("Content-Range", f"bytes */{f.size}")],
            )
        if ranges is None:
            return None
        if len(ranges) == 1:
            first, last = ranges[0]
            count = last - first + 1
            headers = header_block(
                [
                    ("Content-Type", f.content_type),
                    ("Last-Modified", f.last_modified),
                    ("ETag", f.etag),
                    ("Accept-Ranges", "bytes"),
                    ("Content-Range", f"bytes {first}-{last}/{f.size}"),
                    ("Content-Length", str(count)),
                ]
            )
            part = _span(f, first, count)
            return Response(206, headers, part if type(part) is bytes else [part], count)
        parts: list[bytes | FileSpan] = []
        total = 0
        for first, last in ranges:
            head = _ranges.part_head(f.content_type, first, last, f.size)
            parts.append(head)
            count = last - first + 1
            parts.append(_span(f, first, count))
            total += len(head) + count
        parts.append(_ranges.CLOSING)
        total += len(_ranges.CLOSING)
        headers = header_block(
            [
                ("Content-Type", _ranges.MULTIPART_TYPE),
                ("Last-Modified", f.last_modified),
                ("ETag", f.etag),
                ("Accept-Ranges", "bytes"),
                ("Content-Length", str(total)),
            ]
        )
        if all(type(p) is bytes for p in parts):
            return Response(206, headers, b"".join(p for p in parts if isinstance(p, bytes)), total)
        return Response(206, headers, parts, total)

    async def _compress_then_serve(self, req: Request, f: _File) -> Response:
        data = f.body
        if data is None:
            loop = asyncio.get_running_loop()
            try:
                st, data = await loop.run_in_executor(None, _read_small, f.path)
            except OSError:
                return error_response(404, "Nothing here.")
            if (st.st_ino, st.st_mtime_ns, st.st_size) != f.key:
                # Changed while we looked: serve it uncompressed this once.
                self._gz_skip(f)
                return await resolve(self._serve(req, f))
        assert data is not None
        await self._gz.compress((f.path, f.key[1], f.size), data)
        return await resolve(self._serve(req, f))

    def _gz_skip(self, f: _File) -> None:
        f.offer_gzip = False

    async def _list_async(self, req: Request, path: str, url_path: str) -> Response:
        from . import _listing  # html and json: imported by the first listing, not at start-up

        loop = asyncio.get_running_loop()
        try:
            entries = await loop.run_in_executor(None, _listing.scan, path, self._allowed)
        except OSError:
            return error_response(403, "This folder cannot be listed.")
        if _listing.wants_json(req.get(b"accept")):
            body = _listing.render_json(url_path, entries)
            ctype = "application/json"
        else:
            body = _listing.render_html(url_path, entries)
            ctype = "text/html; charset=utf-8"
        headers = header_block(
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("Vary", "Accept"),
            ]
        )
        return Response(200, headers, b"" if req.method == "HEAD" else body, len(body))

    def _list(self, req: Request, path: str, url_path: str) -> Answer:
        return self._list_async(req, path, url_path)


def _span(f: _File, first: int, count: int) -> bytes | FileSpan:
    """``count`` bytes of ``f`` from ``first``: from memory when small, else for sendfile."""
    if f.body is not None and count < SENDFILE_FROM:
        return f.body[first : first + count]
    return FileSpan(f.path, first, count, data=f.body)


def _read_small(path: str) -> tuple[os.stat_result, bytes]:
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        return st, fh.read()


def _etag_matches(header: bytes, etag: str) -> bool:
    """Weak comparison of ``If-None-Match`` against ``etag`` (RFC 9110 13.1.2)."""
    value = header.decode("latin-1")
    if value.strip() == "*":
        return True
    for item in value.split(","):
        tag = item.strip()
        if tag.removeprefix("W/") == etag:
            return True
    return False
