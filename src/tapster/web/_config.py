"""The web server's settings as one plain, immutable object.

The command line (``tapster.plugins.tapster_web``) builds a ``WebConfig``; the
service and the handlers only read it, so each layer can be used without the
others (a test builds a ``WebConfig`` directly).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike

WsgiApp = Callable[..., Any]
#: An ASGI 3 application: ``async def app(scope, receive, send)``.
AsgiApp = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one client from exhausting the server."""

    #: Longest request target (the URL in the request line), in bytes.
    max_request_line: int = 8192
    #: Total size of the header section of one request, in bytes.
    max_header_size: int = 32768
    #: Number of header fields in one request.
    max_headers: int = 100
    #: Largest request body accepted (WSGI, ASGI); larger ones get 413.
    max_body: int = 10 * 1024 * 1024
    #: Seconds a client has to send a complete request once it has started one
    #: (and to send the first request after connecting): slow clients are cut off.
    request_timeout: float = 30.0
    #: Seconds an idle keep-alive connection stays open between requests.
    keep_alive_timeout: float = 15.0
    #: Seconds a response may make no progress because the client does not read.
    send_timeout: float = 60.0
    #: Parsed requests queued behind the one in progress before reading pauses.
    max_pipeline: int = 32
    #: Largest WebSocket message (ASGI); a larger one closes the socket with 1009.
    ws_max_size: int = 16 * 1024 * 1024
    #: ASGI requests and WebSocket sessions at once; above it, 503 (None: no limit).
    limit_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Everything ``tapster web`` serves and how.

    ``root`` is the folder of static files (``None`` serves no files);
    ``wsgi_app`` a WSGI application, or ``asgi_app`` an ASGI one, that answers
    what the files do not. ``lifespan`` is ``auto`` (use the lifespan protocol
    when the application supports it), ``on`` (it must) or ``off``.
    ``forwarded_allow`` lists the proxies (addresses, networks, ``*``) whose
    ``X-Forwarded-*`` and ``Forwarded`` headers are believed; empty: none.
    ``portal`` is a ``tapster.cred.portal.Portal``: when set, every request
    needs HTTP Basic credentials that it accepts.
    """

    root: str | PathLike[str] | None = None
    indexes: tuple[str, ...] = ("index.html",)
    mime_types: Mapping[str, str] = field(default_factory=dict)
    listing: bool = True
    access_log: bool = True
    access_log_file: str | None = None
    follow_symlinks: bool = False
    gzip: bool = True
    wsgi_app: WsgiApp | None = None
    wsgi_threads: int = 10
    asgi_app: AsgiApp | None = None
    root_path: str = ""
    lifespan: str = "auto"
    forwarded_allow: tuple[str, ...] = ()
    portal: Any = None
    realm: str = "tapster"
    limits: Limits = field(default_factory=Limits)
