"""The forwarding engine in-process: real sockets on 127.0.0.1, one asyncio loop."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from support import free_port

from tapster.portforward import Connector, Forwarder, host_port_connector

Runner = Callable[[Awaitable[Any]], Any]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def run(run_async: Callable[[Any], Any]) -> Callable[[Awaitable[Any]], Any]:
    """Run a coroutine with a time limit, on asyncio and on uvloop."""

    def runner(coro: Awaitable[Any]) -> Any:
        async def main() -> Any:
            async with asyncio.timeout(30):
                return await coro

        return run_async(main())

    return runner


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def late_connector(port: int, delay: float) -> Connector:
    """Connects at once, returns ``delay`` seconds later (as one with a handshake of its
    own would): whatever the destination sends meanwhile is already on its way."""
    connect = host_port_connector("127.0.0.1", port)

    async def connector(
        factory: Callable[[], asyncio.Protocol],
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        connected = await connect(factory)
        await asyncio.sleep(delay)
        return connected

    return connector


@asynccontextmanager
async def proxy_to(
    handler: Handler, late: float | None = None, **kwargs: Any
) -> AsyncIterator[tuple[int, Forwarder]]:
    """A destination server running ``handler`` and a forwarder in front of it
    (whose connector returns ``late`` seconds after connecting, when given)."""
    dest = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=1024)
    dest_port = dest.sockets[0].getsockname()[1]
    connector = (
        host_port_connector("127.0.0.1", dest_port)
        if late is None
        else late_connector(dest_port, late)
    )
    fw = Forwarder(connector, f"127.0.0.1:{dest_port}", **kwargs)
    loop = asyncio.get_running_loop()
    port = free_port()
    server = await loop.create_server(fw, "127.0.0.1", port, backlog=1024)
    try:
        yield port, fw
    finally:
        server.close()
        fw.close_all(abort=True)
        await fw.wait_idle()
        dest.close()


def test_bytes_both_ways_and_counters(run: Runner) -> None:
    async def greeter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello from dest\n")
        line = await reader.readline()
        writer.write(b"got " + line)
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with proxy_to(greeter) as (port, fw):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await reader.readline() == b"hello from dest\n"
            writer.write(b"ping\n")
            assert await reader.readline() == b"got ping\n"
            assert await reader.read() == b""
            writer.close()
            await fw.wait_idle()
            assert fw.stats.connections == 1
            assert fw.stats.active == 0
            assert fw.stats.bytes_to_dest == 5
            assert fw.stats.bytes_from_dest == len(b"hello from dest\ngot ping\n")

    run(main())


@pytest.mark.parametrize("then", ["stays", "half-closes", "closes"])
def test_destination_speaking_before_the_link_is_made_loses_nothing(run: Runner, then: str) -> None:
    """Bytes (and an end) the destination sends before the connector returns all arrive.

    They came in one read before the link existed and were dropped: a slow reader's test
    missed 128,000 bytes of 64 MiB under load.
    """
    payload = os.urandom(200_000)

    async def talker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        if then == "half-closes":
            writer.write_eof()
            assert await reader.read() == b"after"  # the other direction still works
        elif then == "closes":
            writer.close()
            return
        else:
            assert await reader.readexactly(5) == b"after"
        writer.close()

    async def main() -> None:
        async with proxy_to(talker, late=0.3) as (port, fw):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            got = await reader.readexactly(len(payload))
            assert got == payload
            if then != "closes":
                writer.write(b"after")
                if then == "half-closes":
                    writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await fw.wait_idle()
            assert fw.stats.bytes_from_dest == len(payload)

    run(main())


def test_client_leaving_while_the_connector_works_closes_the_destination(run: Runner) -> None:
    async def main() -> None:
        gone = asyncio.Event()

        async def waiter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with suppress(ConnectionError):
                await reader.read()
            gone.set()
            writer.close()

        async with proxy_to(waiter, late=0.3) as (port, fw):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.1)  # connected to the destination, connector not back yet
            writer.close()
            await asyncio.wait_for(gone.wait(), 5)  # not left open behind the proxy
            await fw.wait_idle()
            assert fw.stats.active == 0

    run(main())


def test_client_half_close_keeps_the_reply_direction_open(run: Runner) -> None:
    async def hasher(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Reads until the client's EOF, then answers: needs the half-close passed on.
        data = await reader.read()
        writer.write(hashlib.sha256(data).hexdigest().encode())
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with proxy_to(hasher) as (port, _fw):
            payload = os.urandom(300_000)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            writer.write_eof()
            assert await reader.read() == hashlib.sha256(payload).hexdigest().encode()
            writer.close()

    run(main())


def test_destination_half_close_keeps_the_request_direction_open(run: Runner) -> None:
    received: list[bytes] = []

    async def announcer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"banner")
        writer.write_eof()  # done talking, still listening
        received.append(await reader.read())
        writer.close()

    async def main() -> None:
        async with proxy_to(announcer) as (port, fw):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await reader.read() == b"banner"  # EOF arrives through the proxy
            writer.write(b"still here")
            writer.write_eof()
            await fw.wait_idle()
            writer.close()
            for _ in range(200):
                if received:
                    break
                await asyncio.sleep(0.01)
        assert received == [b"still here"]

    run(main())


def test_slow_reader_keeps_proxy_buffers_bounded(run: Runner) -> None:
    total = 48 * 1024 * 1024
    chunk = os.urandom(1024 * 1024)
    sent = hashlib.sha256()

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(total // len(chunk)):
            writer.write(chunk)
            sent.update(chunk)
            await writer.drain()
        writer.close()

    async def main() -> None:
        high = 64 * 1024
        async with proxy_to(firehose, high_water=high) as (port, fw):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**16)
            peak = 0

            def proxy_buffered() -> int:
                size = 0
                for link in fw.links:
                    for half in (link.client, link.dest):
                        if half is not None and half.transport is not None:
                            size += half.transport.get_write_buffer_size()
                return size

            got = hashlib.sha256()
            received = 0
            # A slow start: read nothing for a while, then trickle, then drain.
            for _ in range(20):
                await asyncio.sleep(0.02)
                peak = max(peak, proxy_buffered())
            while data := await reader.read(65536):
                got.update(data)
                received += len(data)
                if received < 4 * 1024 * 1024:
                    await asyncio.sleep(0.001)
                peak = max(peak, proxy_buffered())
            writer.close()
            assert received == total
            assert got.digest() == sent.digest()
            # One high-water mark plus at most one socket read (256 KiB) in flight.
            assert peak <= high + 256 * 1024, peak
            assert fw.stats.bytes_from_dest == total

    run(main())


def test_many_concurrent_connections(run: Runner) -> None:
    async def one(port: int, i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = os.urandom(1000 + i * 37)
        writer.write(payload)
        writer.write_eof()
        assert await reader.read() == payload
        writer.close()

    async def main() -> None:
        async with proxy_to(echo) as (port, fw):
            await asyncio.gather(*(one(port, i) for i in range(300)))
            await fw.wait_idle()
            assert fw.stats.connections == 300
            assert fw.stats.peak > 1
            assert fw.stats.active == 0

    run(main())


def test_connection_limit_rejects_the_excess(run: Runner) -> None:
    async def main() -> None:
        async with proxy_to(echo, max_connections=2) as (port, fw):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            for reader, writer in held:
                writer.write(b"x")
                assert await reader.readexactly(1) == b"x"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            with suppress(ConnectionResetError):
                assert await reader.read() == b""
            writer.close()
            assert fw.stats.rejected == 1
            for _reader, writer in held:
                writer.close()
            await fw.wait_idle()
            # Slots free again.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"y")
            assert await reader.readexactly(1) == b"y"
            writer.close()

    run(main())


def test_unreachable_destination_closes_the_client_and_counts(run: Runner) -> None:
    async def main() -> None:
        dead = free_port()
        fw = Forwarder(host_port_connector("127.0.0.1", dead), f"127.0.0.1:{dead}")
        server = await asyncio.get_running_loop().create_server(fw, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with suppress(ConnectionResetError):
            assert await reader.read() == b""
        writer.close()
        await fw.wait_idle()
        server.close()
        assert fw.stats.failed == 1
        assert fw.stats.active == 0

    run(main())
