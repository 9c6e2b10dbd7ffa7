"""Network services on asyncio: servers, datagram servers, timers, clients.

All of them are ``tapster.service.Service`` objects: bind in
``privileged_start``, serve after ``start``, and stop within the shutdown
budget. They run on the standard asyncio loop and on uvloop.
"""

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
]
