"""Endpoint descriptions: where to listen and where to connect, as strings.

``server_from_string("tcp:8080:interface=127.0.0.1")`` returns a
:class:`ServerEndpoint` whose synchronous ``bind()`` returns listening
sockets (run it before privileges are dropped); ``client_from_string(
"tcp:host=example.com:port=80")`` returns a :class:`ClientEndpoint` with an
async ``connect(protocol_factory)``. A malformed description raises
:class:`EndpointError`; a failed bind raises :class:`ListenError`.

The names are exported lazily (module ``__getattr__``), so that a service
that binds a ``TCPServerEndpoint`` directly does not import the description
parsers, the TLS helpers and the parser plugin machinery.
"""

from __future__ import annotations

from tapster._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
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

_HOMES = {
    "AdoptedServerEndpoint": "_server",
    "ClientEndpoint": "_client",
    "Description": "_syntax",
    "EndpointError": "_errors",
    "EndpointParser": "_parsers",
    "ListenError": "_errors",
    "ServerEndpoint": "_server",
    "TCPClientEndpoint": "_client",
    "TCPServerEndpoint": "_server",
    "UNIXClientEndpoint": "_client",
    "UNIXServerEndpoint": "_server",
    "client_from_string": "_registry",
    "forget_parsers": "_registry",
    "format_address": "_server",
    "parse": "_syntax",
    "quote": "_syntax",
    "server_from_string": "_registry",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
