"""Routing one request: authentication first, then static files, then WSGI or ASGI."""

from __future__ import annotations

from ._config import WebConfig
from ._http import Handled, Request, Response, error_response
from ._static import StaticFiles


class WebApp:
    """Answers requests for a ``WebConfig``; the connection protocol calls ``handle``.

    ``handle`` returns a response when it can answer at once (the common case
    for cached files) and an awaitable when it must wait for something.
    """

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        app_behind = config.wsgi_app is not None or config.asgi_app is not None
        self._static = (
            StaticFiles(config, fallthrough=app_behind) if config.root is not None else None
        )
        self._wsgi = None
        if config.wsgi_app is not None:
            from ._wsgi import WsgiHandler

            self._wsgi = WsgiHandler(config.wsgi_app, config.wsgi_threads)
        #: The ASGI application's handler (``--asgi``); the lifespan runs beside it.
        self.asgi = None
        if config.asgi_app is not None:
            from ._asgi import AsgiHandler

            self.asgi = AsgiHandler(
                config.asgi_app,
                root_path=config.root_path,
                limit_concurrency=config.limits.limit_concurrency,
                ws_max_size=config.limits.ws_max_size,
            )
        #: Whether requests go out as soon as their head is parsed (ASGI streams bodies).
        self.streams = self.asgi is not None
        #: WSGI: makes the ``wsgi.input`` of a body that arrives after its request goes out.
        self.wsgi = self._wsgi
        self._proxy = None
        if config.forwarded_allow:
            from ._proxy import ProxyHeaders

            self._proxy = ProxyHeaders(config.forwarded_allow)
        self._auth = None
        if config.portal is not None:
            from ._auth import BasicAuth

            self._auth = BasicAuth(config.portal, config.realm)
        if (
            self._auth is None
            and self._wsgi is None
            and self.asgi is None
            and self._proxy is None
            and self._static is not None
        ):
            # Files only: nothing to route, so requests go straight to the files.
            # (Without a WSGI fallback the static handler never answers None.)
            self.handle = self._static.handle  # type: ignore[method-assign,assignment]

    def start(self) -> None:
        """Check what must exist once the server runs (the root folder, after any chroot)."""
        if self._static is not None:
            self._static.start()

    def handle(self, req: Request) -> Handled:
        """The response to ``req`` (or an awaitable of it)."""
        if self._proxy is not None:
            self._proxy.apply(req)
        auth = self._auth
        if auth is not None:
            header = req.get(b"authorization")
            user = auth.cached(header)
            if user is None:
                return self._login_then_route(req, header)
            req.remote_user = user
        return self._route(req)

    async def _login_then_route(self, req: Request, header: bytes | None) -> Response | None:
        assert self._auth is not None
        user = await self._auth.login(header)
        if user is None:
            return self._auth.challenge(head=req.method == "HEAD")
        req.remote_user = user
        result = self._route(req)
        return result if isinstance(result, Response) else await result

    def _route(self, req: Request) -> Handled:
        if self.asgi is not None and req.scheme[0] == "w":
            return self.asgi.handle(req)  # a WebSocket: never a file
        if self._static is not None:
            result = self._static.handle(req)
            if result is not None:
                return result
        if self._wsgi is not None:
            return self._wsgi.handle(req)
        if self.asgi is not None:
            return self.asgi.handle(req)
        return error_response(404, "Nothing here.")

    def close(self) -> None:
        """Release worker threads (WSGI)."""
        if self._wsgi is not None:
            self._wsgi.close()
