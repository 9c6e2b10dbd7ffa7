"""``tapster portforward``: a TCP proxy with backpressure, half-close and counters.

The engine (:class:`Forwarder`) is a plain asyncio protocol factory, usable
with ``loop.create_server`` on its own; :class:`PortForwardService` runs it on
a listening endpoint as a tapster service.
"""

from tapster.portforward._options import PortForwardOptions
from tapster.portforward._proxy import Connector, Forwarder, ForwardStats, host_port_connector
from tapster.portforward._service import PortForwardService

__all__ = [
    "Connector",
    "ForwardStats",
    "Forwarder",
    "PortForwardOptions",
    "PortForwardService",
    "host_port_connector",
]
