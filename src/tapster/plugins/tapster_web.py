"""The built-in ``tapster web`` command: a static file and WSGI web server."""

from __future__ import annotations

from typing import Any

from tapster.service import Service, ServiceMaker
from tapster.web._options import WebOptions


class _WebMaker(ServiceMaker):
    tapname = "web"
    description = "Serve static files and/or a WSGI application over HTTP/1.1."
    options = WebOptions

    def make_service(self, options: Any) -> Service:
        from tapster.web._options import config_from_options
        from tapster.web._service import WebService

        portal = None
        checkers = options.get("cred_checkers") or []
        if checkers:
            from tapster.cred import Portal
            from tapster.web._auth import WebRealm

            portal = Portal(WebRealm(), checkers)
        return WebService(
            config_from_options(options, portal),
            options["listen_endpoints"],
            chroot=options.get("chroot"),
        )


web = _WebMaker()
