"""Twisted side of the login case: a line protocol over a portal built from ``--auth``.

    PYTHONPATH=<folder> twistd -n --pidfile= bench-login --port PORT --auth memory:alice:secret

One request per line, one answer per line:

- ``LOGIN <user> <password>`` -> ``OK`` or ``FAIL`` (through the portal and its checkers)
- ``PING`` -> ``PONG`` (answered at once: the loop-stall probe during a login flood)

Twisted's ``--auth memory:`` checker stores ``str`` names and passwords while most others
(``file:``) hold ``bytes``; ``--str-credentials`` hands the portal ``str`` so ``memory:`` matches.
"""

from twisted.application.internet import TCPServer
from twisted.application.service import IServiceMaker
from twisted.cred import credentials, portal, strcred
from twisted.internet.protocol import Factory
from twisted.plugin import IPlugin
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from zope.interface import Interface, implementer


class IBenchUser(Interface):
    """The avatar interface the login protocol asks for."""


@implementer(portal.IRealm)
class BenchRealm:
    """Gives every authenticated user the same trivial avatar."""

    def requestAvatar(self, avatar_id, mind, *interfaces):  # noqa: N802 - Twisted's API name
        """Return ``(IBenchUser, avatar_id, logout)``."""
        return IBenchUser, avatar_id, lambda: None


class LoginProtocol(LineReceiver):
    """``LOGIN user password`` -> ``OK``/``FAIL``; ``PING`` -> ``PONG``."""

    delimiter = b"\n"

    def lineReceived(self, line):  # noqa: N802 - Twisted's API name
        line = line.rstrip(b"\r")
        if line == b"PING":
            self.sendLine(b"PONG")
            return
        parts = line.split(b" ")
        if len(parts) != 3 or parts[0] != b"LOGIN":
            self.sendLine(b"ERROR")
            return
        user, password = parts[1], parts[2]
        if self.factory.str_credentials:
            user, password = user.decode(), password.decode()
        creds = credentials.UsernamePassword(user, password)
        d = self.factory.portal.login(creds, None, IBenchUser)
        d.addCallbacks(lambda _: self.sendLine(b"OK"), lambda _: self.sendLine(b"FAIL"))


class LoginOptions(usage.Options, strcred.AuthOptionMixin):
    """``--port``, ``--interface``, ``--str-credentials`` and ``--auth``."""

    supportedInterfaces = (credentials.IUsernamePassword,)  # noqa: N815 - Twisted's API name
    optParameters = [  # noqa: N815 - Twisted's API name
        ["port", "p", 9001, "TCP port to listen on.", int],
        ["interface", "i", "127.0.0.1", "Address to listen on."],
    ]
    optFlags = [  # noqa: N815 - Twisted's API name
        ["str-credentials", None, "Pass str (not bytes) credentials (for --auth memory:)."],
    ]


@implementer(IServiceMaker, IPlugin)
class LoginServiceMaker:
    """The ``bench-login`` service maker."""

    tapname = "bench-login"
    description = "Line-based login server over a portal, for tapster's benchmarks."
    options = LoginOptions

    def makeService(self, options):  # noqa: N802 - Twisted's API name
        """A TCP server whose protocol logs in through a portal of the ``--auth`` checkers."""
        factory = Factory.forProtocol(LoginProtocol)
        factory.portal = portal.Portal(BenchRealm(), options["credCheckers"])
        factory.str_credentials = bool(options["str-credentials"])
        return TCPServer(options["port"], factory, interface=options["interface"])


bench_login = LoginServiceMaker()
