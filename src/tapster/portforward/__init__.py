"""``tapster portforward``: a TCP proxy with backpressure, half-close and counters.

The engine (:class:`Forwarder`) is a plain asyncio protocol factory, usable
with ``loop.create_server`` on its own; the plugin wraps it in a service.
"""

from tapster.portforward._proxy import Connector, Forwarder, ForwardStats, host_port_connector

__all__ = ["Connector", "ForwardStats", "Forwarder", "host_port_connector"]
