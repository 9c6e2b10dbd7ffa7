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


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one client from exhausting the server."""

    #: Longest request target (the URL in the request line), in bytes.
    max_request_line: int = 8192
    #: Total size of the header section of one request, in bytes.
    max_header_size: int = 32768
    #: Number of header fields in one request.
    max_headers: int = 100
    #: Largest request body accepted (WSGI); larger ones get 413.
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


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Everything ``tapster web`` serves and how.

    ``root`` is the folder of static files (``None`` serves no files);
    ``wsgi_app`` a WSGI application that answers what the files do not.
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
    portal: Any = None
    realm: str = "tapster"
    limits: Limits = field(default_factory=Limits)
