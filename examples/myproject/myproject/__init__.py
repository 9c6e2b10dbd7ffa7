"""myproject: a small line protocol that keeps a dog happy.

The dog lives in a :class:`Kennel` shared by every connection of one server.
Clients send one command a line and get one line back:

``PET``     the dog wags, happiness goes up by one
``TREAT``   the dog crunches, happiness goes up by three
``STATUS``  how happy the dog is
``QUIT``    the server says goodbye and closes the connection

The protocol logic (:meth:`Kennel.handle_line`) knows nothing about sockets, so
it is tested without a network; :func:`serve_dog` connects it to a stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["Kennel", "serve_dog"]

#: Longest line a client may send; longer lines end the connection.
MAX_LINE = 1024


class Kennel:
    """The dog's state and the replies to each command."""

    def __init__(self, name: str = "Rex") -> None:
        self.name = name
        self.happiness = 0

    def handle_line(self, line: str) -> tuple[str, bool]:
        """Answer one command line; the flag says whether to close the connection."""
        command = line.strip().upper()
        if command == "PET":
            self.happiness += 1
            return f"{self.name} wags (happiness {self.happiness})", False
        if command == "TREAT":
            self.happiness += 3
            return f"{self.name} crunches (happiness {self.happiness})", False
        if command == "STATUS":
            return f"{self.name} happiness {self.happiness}", False
        if command == "QUIT":
            return "bye", True
        shown = command[:20] or "(empty line)"
        return f"ERR unknown command {shown!r}; try PET, TREAT, STATUS or QUIT", False


def serve_dog(
    kennel: Kennel,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """Return an ``async def handler(reader, writer)`` that serves ``kennel``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{kennel.name} is here. Commands: PET, TREAT, STATUS, QUIT\r\n".encode())
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                if len(raw) > MAX_LINE:
                    writer.write(b"ERR line too long\r\n")
                    break
                reply, close = kennel.handle_line(raw.decode("utf-8", "replace"))
                writer.write(reply.encode() + b"\r\n")
                await writer.drain()
                if close:
                    break
        finally:
            writer.close()

    return handler
