"""The operations case's baseline: ``tapster web`` with its per-request metric updates off.

    tapster --app-dir <folder holding tapster/plugins/> bench-web-bare --path DIR --listen ...

The same options and service as ``tapster web``; only ``web``'s two counting calls (one per
response) are replaced by functions that do nothing, so the difference between the two is what
the metrics cost a request. Copy it with ``bench.bundled_tapster_plugins(root, "bench_web_bare")``.
"""

from __future__ import annotations

from typing import Any

from tapster.service import Service, ServiceMaker
from tapster.web._options import WebOptions


def _uncounted(*args: object) -> None:
    """Count nothing."""


class _BareWebMaker(ServiceMaker):
    tapname = "bench-web-bare"
    description = "tapster web without its per-request metric updates (benchmark baseline)."
    options = WebOptions

    def make_service(self, options: Any) -> Service:
        from tapster.plugins.tapster_web import web
        from tapster.web import _protocol

        _protocol.count_request = _uncounted  # type: ignore[assignment]
        _protocol.count_rejected = _uncounted  # type: ignore[assignment]
        return web.make_service(options)


bench_web_bare = _BareWebMaker()
