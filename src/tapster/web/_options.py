"""The ``tapster web`` command line, and its translation into a ``WebConfig``."""

from __future__ import annotations

import importlib
import math
import os
import re
import socket
import sys
from typing import Any

from tapster.cred.credentials import Anonymous, UsernamePassword
from tapster.cred.strcred import AuthOptionMixin
from tapster.usage import Options, UsageError, existing_dir, positive_int

from ._config import Limits, WebConfig

#: Loopback only, as uvicorn and gunicorn do: ``tapster web --path .`` must not
#: publish a folder to the network by accident; ``--listen tcp:8080`` does that on purpose.
DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def size(text: str) -> int:
    """A byte count: ``1048576``, ``512K``, ``10M``, ``1G`` (binary units)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 65536, 512K, 10M, 1G)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


size.coerce_doc = "A size in bytes, or with a unit: 512K, 10M, 1G."  # type: ignore[attr-defined]


def seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{text!r} must be more than 0 seconds")
    return value


seconds.coerce_doc = "Seconds (a positive number)."  # type: ignore[attr-defined]


def folder_name(text: str) -> str:
    """A folder's path, not checked yet: ``post_options`` knows whether a chroot applies."""
    if not text:
        raise ValueError("expected the path of a directory")
    return text


def realm(text: str) -> str:
    """A realm name that fits in a ``WWW-Authenticate`` header (see ``check_realm``)."""
    from ._auth import check_realm

    return check_realm(text)


realm.coerce_doc = 'Printable ASCII, without " or \\.'  # type: ignore[attr-defined]


def lifespan_mode(text: str) -> str:
    """``auto``, ``on`` or ``off``."""
    if text not in ("auto", "on", "off"):
        raise ValueError(f"{text!r} is not one of auto, on, off")
    return text


lifespan_mode.coerce_doc = "auto, on or off."  # type: ignore[attr-defined]


def root_path(text: str) -> str:
    """A URL path prefix such as ``/api`` (no trailing slash kept)."""
    if text and not text.startswith("/"):
        raise ValueError(f"{text!r} must start with /")
    if any(c in text for c in "?#\r\n") or not text.isprintable():
        raise ValueError(f"{text!r} is not a plain URL path")
    return text.rstrip("/")


def forwarded_allow(text: str) -> tuple[str, ...]:
    """Comma-separated proxy addresses or networks, or ``*``."""
    import ipaddress

    entries = tuple(part.strip() for part in text.split(",") if part.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)
            else:
                ipaddress.ip_address(entry)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address, a network or *") from None
    return entries


forwarded_allow.coerce_doc = (  # type: ignore[attr-defined]
    "Comma-separated addresses or networks (10.0.0.0/8), or *."
)


class WebOptions(AuthOptionMixin, Options):
    """Options of ``tapster web``."""

    # HTTP Basic sends a user name and password, or nothing at all: --auth types
    # that check anything else (SSH keys) could never let a request in.
    supported_interfaces = (UsernamePassword, Anonymous)

    long_description = (
        "Serve static files from a folder (with listings, ranges, conditional "
        "requests and gzip) and/or a WSGI or ASGI application, over HTTP/1.1 "
        "(and WebSockets, for ASGI)."
    )
    parameters = [
        (
            "path",
            None,
            None,
            "Serve the files below this folder "
            "(default: the current folder, unless --wsgi is given). "
            "With tapster --chroot, a folder inside the chroot, checked when the server starts.",
            folder_name,
        ),
        (
            "wsgi",
            None,
            None,
            "Run this WSGI application, named as module:attribute "
            "(files from --path are served first when both are given).",
        ),
        (
            "asgi",
            None,
            None,
            "Run this ASGI 3 application, named as module:attribute "
            "(files from --path are served first when both are given).",
        ),
        (
            "lifespan",
            None,
            "auto",
            "ASGI lifespan events: auto uses them when the application supports them.",
            lifespan_mode,
        ),
        (
            "root_path",
            None,
            "",
            "ASGI root_path: the URL prefix a proxy strips before passing requests on.",
            root_path,
        ),
        (
            "forwarded_allow_ips",
            None,
            "127.0.0.1",
            "With --proxy-headers: the proxies to believe.",
            forwarded_allow,
        ),
        (
            "limit_concurrency",
            None,
            None,
            "Most ASGI requests and WebSockets at once; more get 503.",
            positive_int,
        ),
        (
            "ws_max_size",
            None,
            16 * 1024 * 1024,
            "Largest WebSocket message (ASGI); larger closes the socket (1009).",
            size,
        ),
        (
            "max_body",
            None,
            10 * 1024 * 1024,
            "Largest request body accepted (WSGI, ASGI); larger gets 413.",
            size,
        ),
        ("threads", None, 10, "Worker threads for the WSGI application.", positive_int),
        (
            "access_log_file",
            None,
            None,
            "Write the access log to this file (batched writes, reopened after rotation) "
            "instead of the tapster log.",
        ),
        (
            "realm",
            None,
            "tapster",
            "The realm name shown by browsers when --auth is used.",
            realm,
        ),
        (
            "request_timeout",
            None,
            30.0,
            "Seconds a client has to send a complete request.",
            seconds,
        ),
        (
            "send_timeout",
            None,
            60.0,
            "Seconds a response may wait for a client that does not read before it is cut off.",
            seconds,
        ),
        (
            "keep_alive_timeout",
            None,
            15.0,
            "Seconds an idle keep-alive connection stays open.",
            seconds,
        ),
    ]
    flags = [
        ("no_listing", None, "Do not list folders that have no index file (403 instead)."),
        ("follow_symlinks", None, "Serve symlinks that point outside --path."),
        ("no_gzip", None, "Never compress responses."),
        (
            "proxy_headers",
            None,
            "Take the client's address and scheme from X-Forwarded-For/Proto or "
            "Forwarded when the peer is in --forwarded-allow-ips.",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["index"] = []
        self["mime_types"] = {}
        self["access_log"] = True

    def opt_listen(self, endpoint: str) -> None:
        """Listen on this endpoint, e.g. tcp:8080 (every interface) or
        unix:/run/web.sock (repeatable; default tcp:8080:interface=127.0.0.1,
        this machine only)."""
        self["listen"].append(endpoint)

    def opt_index(self, name: str) -> None:
        """Serve this file for a folder's URL (repeatable, tried in order;
        default index.html)."""
        if not name or "/" in name or name in (".", ".."):
            raise UsageError(f"--index {name!r}: give a plain file name such as index.html")
        self["index"].append(name)

    def opt_mime_type(self, mapping: str) -> None:
        """Serve files ending in EXT with content type TYPE: EXT=TYPE (repeatable),
        e.g. md=text/markdown."""
        ext, sep, ctype = mapping.partition("=")
        ext = ext.strip().lstrip(".")
        ctype = ctype.strip()
        if not sep or not ext or "/" not in ctype or any(c in ctype for c in "\r\n"):
            raise UsageError(f"--mime-type {mapping!r}: expected EXT=TYPE, e.g. md=text/markdown")
        self["mime_types"][ext] = ctype

    def opt_access_log(self) -> None:
        """Log every request in the combined log format (the default)."""
        self["access_log"] = True

    def opt_no_access_log(self) -> None:
        """Do not log requests."""
        self["access_log"] = False

    def post_options(self) -> None:
        super().post_options()
        self._check_path()
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        from tapster.endpoints import EndpointError, server_from_string

        endpoints = []
        for description in self["listen"]:
            try:
                endpoint = server_from_string(description)
            except EndpointError as exc:
                raise UsageError(f"--listen: {exc}") from None
            if endpoint.socket_type != socket.SOCK_STREAM:
                raise UsageError(
                    f"--listen {description!r}: HTTP needs a stream endpoint "
                    "such as tcp:8080, ssl:8443:cert=FILE or unix:PATH"
                )
            endpoints.append(endpoint)
        self["listen_endpoints"] = endpoints
        if not self["index"]:
            self["index"] = ["index.html"]
        if isinstance(self["forwarded_allow_ips"], str):  # the default, as text
            self["forwarded_allow_ips"] = forwarded_allow(self["forwarded_allow_ips"])
        if self["wsgi"] and self["asgi"]:
            raise UsageError("--wsgi and --asgi: give one application, not both")
        self["wsgi_app"] = load_app("--wsgi", self["wsgi"]) if self["wsgi"] else None
        self["asgi_app"] = load_app("--asgi", self["asgi"]) if self["asgi"] else None
        if self["path"] is None and self["wsgi_app"] is None and self["asgi_app"] is None:
            self["path"] = os.getcwd()

    def _check_path(self) -> None:
        """Check --path now, unless the server will see it through a chroot.

        A chroot (``tapster --chroot``) changes what the path names, so then it
        is only made absolute (relative to the run directory inside the chroot,
        where the runner changes to) and checked when the server starts.
        """
        runner = self.parent
        chroot = runner.get("chroot") if runner is not None else None
        self["chroot"] = os.path.abspath(chroot) if chroot else None
        path = self["path"]
        if path is None:
            return
        if chroot:
            if not os.path.isabs(path):
                rundir = str(runner.get("rundir") or ".") if runner is not None else "."
                path = os.path.normpath(os.path.join("/", rundir.lstrip("/"), path))
                self["path"] = path
            return
        try:
            existing_dir(path)
        except ValueError as exc:
            raise UsageError(f"option --path: invalid value {path!r}: {exc}") from None


def load_app(option: str, spec: str) -> Any:
    """Import ``module:attribute`` for ``option`` (the current folder is searched too)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"{option} {spec!r}: expected module:attribute, e.g. myapp:application")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"{option} {spec!r}: cannot import {module_name!r} ({exc})") from None
    except Exception as exc:
        raise UsageError(
            f"{option} {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"{option} {spec!r}: {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise UsageError(f"{option} {spec!r}: {attribute!r} is not callable")
    return target


def config_from_options(options: Options, portal: Any = None) -> WebConfig:
    """The ``WebConfig`` that parsed ``tapster web`` options describe."""
    limits = Limits(
        max_body=options["max_body"],
        request_timeout=options["request_timeout"],
        keep_alive_timeout=options["keep_alive_timeout"],
        send_timeout=options["send_timeout"],
        ws_max_size=options["ws_max_size"],
        limit_concurrency=options["limit_concurrency"],
    )
    return WebConfig(
        root=options["path"] or None,
        indexes=tuple(options["index"]),
        mime_types=dict(options["mime_types"]),
        listing=not options["no_listing"],
        access_log=options["access_log"],
        access_log_file=options["access_log_file"],
        follow_symlinks=options["follow_symlinks"],
        gzip=not options["no_gzip"],
        wsgi_app=options["wsgi_app"],
        wsgi_threads=options["threads"],
        asgi_app=options["asgi_app"],
        root_path=options["root_path"],
        lifespan=options["lifespan"],
        forwarded_allow=options["forwarded_allow_ips"] if options["proxy_headers"] else (),
        portal=portal,
        realm=options["realm"],
        limits=limits,
    )
