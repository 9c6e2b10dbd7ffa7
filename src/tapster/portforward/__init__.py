"""``tapster portforward``: a TCP proxy with backpressure, half-close and counters.

Two engines move the bytes: ``splice`` (zero-copy through kernel pipes, Linux,
plain sockets) and ``transport`` (:class:`Forwarder`, a plain asyncio protocol
factory usable with ``loop.create_server`` on its own).
:class:`PortForwardService` runs one of them on a listening endpoint.
"""

from tapster.portforward._options import PortForwardOptions
from tapster.portforward._proxy import Connector, Forwarder, ForwardStats, host_port_connector
from tapster.portforward._service import Engine, PortForwardService

__all__ = [
    "Connector",
    "Engine",
    "ForwardStats",
    "Forwarder",
    "PortForwardOptions",
    "PortForwardService",
    "host_port_connector",
]
