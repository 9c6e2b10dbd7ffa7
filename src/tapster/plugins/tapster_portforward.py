"""The built-in ``tapster portforward`` command: a TCP proxy."""

from __future__ import annotations

from typing import Any

from tapster.portforward._options import PortForwardOptions
from tapster.service import Service, ServiceMaker


class _PortForwardMaker(ServiceMaker):
    tapname = "portforward"
    description = "Forward TCP connections to another host and port (a proxy)."
    options = PortForwardOptions

    def make_service(self, options: Any) -> Service:
        from tapster.portforward._service import PortForwardService

        return PortForwardService(
            options["listen_endpoint"],
            options["destination"],
            max_connections=options["max_connections"],
            connect_timeout=options["connect_timeout"],
            drain_timeout=options["drain_timeout"],
            engine=options["engine"],
            idle_timeout=options["idle_timeout"],
        )


portforward = _PortForwardMaker()
