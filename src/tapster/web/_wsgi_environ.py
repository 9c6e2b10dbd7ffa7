"""The PEP 3333 environ of one request (text values are latin-1 "bytes as str").

Built in the worker thread, from a template of the keys every request shares
(``dict.copy`` of it is one C call), and with header names turned into ``HTTP_*``
keys through a small cache: the same few dozen names come in every request.
"""

from __future__ import annotations

import io
import sys
from typing import Any
from urllib.parse import unquote_to_bytes

from ._http import Request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._wsgi_input import WsgiInput

#: Header names already turned into environ keys (``None``: a name kept out).
_KEYS: dict[bytes, str | None] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}
#: Past this many names the cache stops growing (a client can send any names).
_KEYS_MAX = 512


def _key(name: bytes) -> str | None:
    """The environ key of header ``name`` (lower-case); ``None`` for one with ``_``,
    which could pose as its dashed twin (``X_User`` vs ``X-User``)."""
    key = _KEYS.get(name, "")
    if key == "":
        key = None if b"_" in name else "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[name] = key
    return key


class EnvironBuilder:
    """Makes environs for one server: the shared keys once, the request's on each call."""

    def __init__(self, file_wrapper: type) -> None:
        self._template: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            # wsgi.input ends where the body does, chunked or not (the extension
            # mod_wsgi and gunicorn offer, which werkzeug reads for a chunked body).
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": file_wrapper,
        }

    def build(self, req: Request, body: WsgiInput | None = None) -> dict[str, Any]:
        """The environ for ``req``; ``body`` is its streaming ``wsgi.input``, if any."""
        environ = self._template.copy()
        path = req.path
        scheme = req.scheme  # https through TLS, or as a trusted proxy says
        environ["wsgi.url_scheme"] = scheme
        environ["REQUEST_METHOD"] = req.method
        environ["PATH_INFO"] = (unquote_to_bytes(path) if b"%" in path else path).decode("latin-1")
        environ["QUERY_STRING"] = req.query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + req.version
        environ["REMOTE_ADDR"] = req.client
        if body is not None:
            environ["wsgi.input"] = body
        else:
            environ["wsgi.input"] = io.BytesIO(req.body)
        if req.remote_user is not None:
            environ["REMOTE_USER"] = req.remote_user
        for name, value in req.headers:
            key = _KEYS.get(name) or _key(name)
            if key is None:
                continue
            text = value.decode("latin-1")
            old = environ.get(key)
            if old is None:
                environ[key] = text
            elif key[0] == "H":
                environ[key] = old + "," + text
        if req.body and "CONTENT_LENGTH" not in environ:
            environ["CONTENT_LENGTH"] = str(len(req.body))
        host = environ.get("HTTP_HOST")
        default_port = "443" if scheme == "https" else "80"
        if host is None:
            environ["SERVER_NAME"] = "localhost"
            environ["SERVER_PORT"] = default_port
        else:
            colon = host.rfind(":")
            if colon > host.rfind("]"):
                environ["SERVER_NAME"] = host[:colon] or "localhost"
                environ["SERVER_PORT"] = host[colon + 1 :] or default_port
            else:
                environ["SERVER_NAME"] = host or "localhost"
                environ["SERVER_PORT"] = default_port
        return environ
