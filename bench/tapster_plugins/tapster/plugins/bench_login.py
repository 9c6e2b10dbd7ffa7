"""tapster side of the login case: a line protocol over a portal built from ``--auth``.

    tapster --app-dir ROOT bench-login --port PORT --auth memory:alice:secret

The counterpart of ``bench/twisted_plugins/twisted/plugins/bench_login.py`` (same name, options
and behaviour). One request per line, one answer per line:

- ``LOGIN <user> <password>`` -> ``OK`` or ``FAIL`` (through the portal and its checkers)
- ``PING`` -> ``PONG`` (answered at once: the loop-stall probe during a login flood)

Each connection answers its lines in order; connections are served concurrently, so a login
in progress on one connection never holds up a PING on another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tapster.cred import LoginFailed, Portal, Realm, UsernamePassword, credentials, strcred
from tapster.cred.checkers import AvatarId
from tapster.internet import TCPServer
from tapster.service import Service, ServiceMaker
from tapster.usage import Options, port


class BenchUser:
    """The avatar interface the login protocol asks for."""


class BenchRealm(Realm):
    """Gives every authenticated user the same trivial avatar."""

    async def request_avatar(
        self, avatar_id: AvatarId, mind: object, *interfaces: type
    ) -> tuple[type, object, Callable[[], None]]:
        return BenchUser, avatar_id, lambda: None


def make_handler(portal: Portal) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    """The line protocol, as an ``async def handler(reader, writer)``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                parts = line.rstrip(b"\r\n").split(b" ")
                if parts == [b"PING"]:
                    writer.write(b"PONG\n")
                elif len(parts) == 3 and parts[0] == b"LOGIN":
                    try:
                        await portal.login(UsernamePassword(parts[1], parts[2]), None, BenchUser)
                    except LoginFailed:
                        writer.write(b"FAIL\n")
                    else:
                        writer.write(b"OK\n")
                else:
                    writer.write(b"ERROR\n")
        except ConnectionError:
            pass
        finally:
            writer.close()

    return handle


class LoginOptions(Options, strcred.AuthOptionMixin):
    """``--port``, ``--interface`` and ``--auth``."""

    supported_interfaces = (credentials.UsernamePassword,)
    parameters = [
        ("port", "p", 9001, "TCP port to listen on.", port),
        ("interface", "i", "127.0.0.1", "Address to listen on."),
    ]


class _LoginMaker(ServiceMaker):
    tapname = "bench-login"
    description = "Line-based login server over a portal, for tapster's benchmarks."
    options = LoginOptions

    def make_service(self, options: Any) -> Service:
        portal = Portal(BenchRealm(), options["cred_checkers"])
        return TCPServer(int(options["port"]), make_handler(portal), interface=options["interface"])


bench_login = _LoginMaker()
