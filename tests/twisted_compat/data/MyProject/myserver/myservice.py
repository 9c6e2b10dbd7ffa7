"""What the seed leaves out: the realm and the protocol factory (Twisted API).

One line per request: ``LOGIN user password`` answers ``OK <host> <user>`` or ``FAIL``.
"""

from twisted.cred import credentials, error
from twisted.internet import protocol
from twisted.protocols import basic
from zope.interface import Interface, implementer
from twisted.cred.portal import IRealm


class IGreeter(Interface):
    """The avatar interface: a logged-in user."""


@implementer(IRealm)
class MyServerRealm:
    def __init__(self, host):
        self.host = host

    def requestAvatar(self, avatarId, mind, *interfaces):
        if IGreeter in interfaces:
            name = avatarId.decode() if isinstance(avatarId, bytes) else avatarId
            return IGreeter, "%s %s" % (self.host, name), lambda: None
        raise NotImplementedError()


class Login(basic.LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        parts = line.split()
        if len(parts) != 3 or parts[0] != b"LOGIN":
            self.sendLine(b"ERROR")
            return
        # Twisted's memory: checker keeps names and passwords as typed (str), its file:
        # checker as read from the file (bytes): try the bytes, then the text.
        portal = self.factory.portal
        creds = credentials.UsernamePassword(parts[1], parts[2])
        text = credentials.UsernamePassword(parts[1].decode(), parts[2].decode())
        d = portal.login(creds, None, IGreeter)
        d.addErrback(lambda failure: failure.trap(error.UnauthorizedLogin)
                     and portal.login(text, None, IGreeter))
        d.addCallback(lambda result: self.sendLine(b"OK " + result[1].encode()))
        d.addErrback(lambda failure: failure.trap(error.UnauthorizedLogin)
                     and self.sendLine(b"FAIL"))


class ServerFactory(protocol.ServerFactory):
    protocol = Login

    def __init__(self, realm, portal):
        self.realm = realm
        self.portal = portal
