"""Network services on asyncio: servers, datagram servers, timers, clients.

All of them are ``tapster.service.Service`` objects: bind in
``privileged_start``, serve after ``start``, and stop within the shutdown
budget. They run on the standard asyncio loop and on uvloop.

The names are exported lazily (module ``__getattr__``): a plugin that only
runs a ``TCPServer`` does not import the client, datagram and timer modules
(nor what they import) on its way to readiness.
"""

from __future__ import annotations

from tapster._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.internet._client import Backoff, ClientService
    from tapster.internet._datagram import DatagramServerService, UDPServer
    from tapster.internet._stream import (
        ProtocolFactory,
        SSLServer,
        StreamHandler,
        StreamServerService,
        TCPServer,
        UNIXServer,
    )
    from tapster.internet._timer import TimerService
    from tapster.internet._tls import is_tls

__all__ = [
    "Backoff",
    "ClientService",
    "DatagramServerService",
    "ProtocolFactory",
    "SSLServer",
    "StreamHandler",
    "StreamServerService",
    "TCPServer",
    "TimerService",
    "UDPServer",
    "UNIXServer",
    "is_tls",
]

_HOMES = {
    "Backoff": "_client",
    "ClientService": "_client",
    "DatagramServerService": "_datagram",
    "ProtocolFactory": "_stream",
    "SSLServer": "_stream",
    "StreamHandler": "_stream",
    "StreamServerService": "_stream",
    "TCPServer": "_stream",
    "TimerService": "_timer",
    "UDPServer": "_datagram",
    "UNIXServer": "_stream",
    "is_tls": "_tls",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
