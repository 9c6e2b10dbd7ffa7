"""What the seed leaves out: ``MyFactory``, here an echo server (Twisted API)."""

from twisted.internet import protocol
from twisted.python import log


class Echo(protocol.Protocol):
    def connectionMade(self):
        log.msg("myproject: connection from %s" % (self.transport.getPeer().host,))

    def dataReceived(self, data):
        self.transport.write(data)


class MyFactory(protocol.Factory):
    protocol = Echo
