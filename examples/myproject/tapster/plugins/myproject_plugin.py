"""tapster plugins of myproject: `tapster myproject` and `tapster myserver`.

This file lives in a ``tapster/plugins/`` folder with no ``__init__.py``: tapster
finds it there, lists both commands in ``tapster --help`` from its cache, and
imports this module only when one of them runs.
"""

from __future__ import annotations

from tapster.cred.credentials import UsernamePassword
from tapster.cred.portal import Portal
from tapster.cred.strcred import AuthOptionMixin
from tapster.endpoints import server_from_string
from tapster.internet import StreamServerService, TCPServer
from tapster.service import ServiceMaker
from tapster.usage import Options, port

from myproject import Kennel, serve_dog
from myproject.auth import KennelRealm, serve_members


class DogOptions(Options):
    parameters = [
        ["port", "p", 1235, "The port number to listen on.", port],
        # A bad endpoint string is a usage error, reported before anything starts.
        [
            "listen",
            "l",
            None,
            "An endpoint to listen on instead, e.g. systemd:index=0.",
            server_from_string,
        ],
    ]


class DogServiceMaker(ServiceMaker):
    tapname = "myproject"
    description = "Run this! It'll make your dog happy."
    options = DogOptions

    def make_service(self, options):
        """A server on --port (or the --listen endpoint) that serves one shared kennel."""
        handler = serve_dog(Kennel())
        if options["listen"]:
            return StreamServerService(options["listen"], handler)
        return TCPServer(options["port"], handler)


class MemberOptions(Options, AuthOptionMixin):
    # Which credentials our protocol can send: only name and password.
    supported_interfaces = (UsernamePassword,)
    parameters = [
        ["port", "p", 1234, "Server port number", port],
        ["host", "h", "localhost", "Server hostname"],
    ]


class MemberServiceMaker(ServiceMaker):
    tapname = "myserver"
    description = "The kennel, for visitors who log in."
    options = MemberOptions

    def make_service(self, options):
        """A TCP server whose visitors log in through a portal built from --auth."""
        realm = KennelRealm(options["host"])
        portal = Portal(realm, options["cred_checkers"])
        return TCPServer(options["port"], serve_members(Kennel(), portal))


# Module-level instances are what tapster discovers; their names do not matter.
service_maker = DogServiceMaker()
member_service_maker = MemberServiceMaker()
