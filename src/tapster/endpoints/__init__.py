"""Endpoint descriptions: where to listen and where to connect, as strings.

``server_from_string("tcp:8080:interface=127.0.0.1")`` returns a
:class:`ServerEndpoint` whose synchronous ``bind()`` returns listening
sockets (run it before privileges are dropped); ``client_from_string(
"tcp:host=example.com:port=80")`` returns a :class:`ClientEndpoint` with an
async ``connect(protocol_factory)``. A malformed description raises
:class:`EndpointError`; a failed bind raises :class:`ListenError`.
"""

from tapster.endpoints._client import ClientEndpoint, TCPClientEndpoint, UNIXClientEndpoint
from tapster.endpoints._errors import EndpointError, ListenError
from tapster.endpoints._parsers import EndpointParser
from tapster.endpoints._registry import client_from_string, forget_parsers, server_from_string
from tapster.endpoints._server import (
    AdoptedServerEndpoint,
    ServerEndpoint,
    TCPServerEndpoint,
    UNIXServerEndpoint,
    format_address,
)
from tapster.endpoints._syntax import Description, parse, quote

__all__ = [
    "AdoptedServerEndpoint",
    "ClientEndpoint",
    "Description",
    "EndpointError",
    "EndpointParser",
    "ListenError",
    "ServerEndpoint",
    "TCPClientEndpoint",
    "TCPServerEndpoint",
    "UNIXClientEndpoint",
    "UNIXServerEndpoint",
    "client_from_string",
    "forget_parsers",
    "format_address",
    "parse",
    "quote",
    "server_from_string",
]
