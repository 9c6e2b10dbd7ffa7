"""myserver: the same kennel, but only for visitors who log in.

``LOGIN name password`` checks the credentials through a tapster.cred portal;
after that the visitor may use the kennel's commands. Anything else before a
login gets ``ERR log in first``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tapster.cred.credentials import UsernamePassword
from tapster.cred.errors import UnauthorizedLogin
from tapster.cred.portal import Portal, Realm

from myproject import MAX_LINE, Kennel

__all__ = ["KennelRealm", "Visitor", "serve_members"]


class Visitor:
    """The avatar of a logged-in user: who they are and which host they reached."""

    def __init__(self, name: str, host: str) -> None:
        self.name = name
        self.host = host
        self.logged_in = True


class KennelRealm(Realm):
    """Gives every authenticated user a :class:`Visitor`."""

    def __init__(self, host: str) -> None:
        self.host = host

    async def request_avatar(
        self, avatar_id: object, mind: object, *interfaces: type
    ) -> tuple[type, object, Callable[[], None]]:
        name = avatar_id.decode() if isinstance(avatar_id, bytes) else str(avatar_id)
        visitor = Visitor(name, self.host)

        def logout() -> None:
            visitor.logged_in = False

        return Visitor, visitor, logout


def serve_members(
    kennel: Kennel, portal: Portal
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """Return a stream handler that asks for ``LOGIN name password`` first."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Members only. Send: LOGIN name password\r\n")
        visitor: Visitor | None = None
        logout: Callable[[], None] = lambda: None  # noqa: E731
        try:
            while True:
                raw = await reader.readline()
                if not raw or len(raw) > MAX_LINE:
                    break
                words = raw.decode("utf-8", "replace").split()
                if words[:1] == ["LOGIN"] and len(words) == 3:
                    try:
                        _, avatar, logout = await portal.login(
                            UsernamePassword(words[1], words[2]), None, Visitor
                        )
                    except UnauthorizedLogin:
                        writer.write(b"DENIED\r\n")
                    else:
                        assert isinstance(avatar, Visitor)
                        visitor = avatar
                        writer.write(f"OK welcome {visitor.name}\r\n".encode())
                elif visitor is None:
                    writer.write(b"ERR log in first\r\n")
                else:
                    reply, close = kennel.handle_line(" ".join(words))
                    writer.write(reply.encode() + b"\r\n")
                    if close:
                        break
                await writer.drain()
        finally:
            logout()
            writer.close()

    return handler
