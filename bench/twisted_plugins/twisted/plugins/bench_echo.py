"""Twisted side of the echo and start-to-ready cases: a TCP echo server as a twistd plugin.

    PYTHONPATH=<folder holding twisted/plugins/> twistd -n --pidfile= bench-echo --port PORT

Use ``bench.bundled_twisted_plugins(root, "bench_echo")`` to copy it into a scratch folder and
get that environment (this keeps Twisted's ``dropin.cache`` out of the source tree). It listens
on 127.0.0.1 only and echoes every byte it receives, like the stdlib reference server
``bench/_echo_server.py``.
"""

from twisted.application.internet import TCPServer
from twisted.application.service import IServiceMaker
from twisted.internet.protocol import Factory, Protocol
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Echo(Protocol):
    """Write back whatever arrives."""

    def dataReceived(self, data):  # noqa: N802 - Twisted's API name
        self.transport.write(data)


class EchoOptions(usage.Options):
    """``--port`` and ``--interface`` of the echo server."""

    optParameters = [  # noqa: N815 - Twisted's API name
        ["port", "p", 9000, "TCP port to listen on.", int],
        ["interface", "i", "127.0.0.1", "Address to listen on."],
    ]


@implementer(IServiceMaker, IPlugin)
class EchoServiceMaker:
    """The ``bench-echo`` service maker."""

    tapname = "bench-echo"
    description = "TCP echo server for tapster's benchmarks (127.0.0.1 by default)."
    options = EchoOptions

    def makeService(self, options):  # noqa: N802 - Twisted's API name
        """A TCP server service that echoes on the chosen port."""
        factory = Factory.forProtocol(Echo)
        return TCPServer(options["port"], factory, interface=options["interface"])


bench_echo = EchoServiceMaker()
