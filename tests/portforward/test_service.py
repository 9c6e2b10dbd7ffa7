"""PortForwardService: binding, readiness, and the drain on stop."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support import free_port

from tapster.endpoints import AdoptedServerEndpoint, ListenError
from tapster.portforward import PortForwardService
from tapster.service import Application, shutdown

Runner = Callable[[Awaitable[Any]], Any]


@pytest.fixture
def run(run_async: Callable[[Any], Any]) -> Runner:
    def runner(coro: Awaitable[Any]) -> Any:
        async def main() -> Any:
            async with asyncio.timeout(30):
                return await coro

        return run_async(main())

    return runner


@pytest.fixture(params=["splice", "transport"])
def engine(request: pytest.FixtureRequest) -> Any:
    return request.param


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_listening_and_drain_then_close_on_stop(
    run: Runner, caplog: pytest.LogCaptureFixture, engine: Any
) -> None:
    caplog.set_level(logging.INFO, logger="tapster.portforward")

    async def main() -> None:
        dest = await asyncio.start_server(echo, "127.0.0.1", 0)
        dest_port = dest.sockets[0].getsockname()[1]
        port = free_port()
        service = PortForwardService(
            f"tcp:{port}:interface=127.0.0.1",
            ("127.0.0.1", dest_port),
            drain_timeout=0.5,
            engine=engine,
        )
        app = Application("pf")
        service.set_parent(app)
        await app.start()
        assert app.listening() == [f"tcp:127.0.0.1:{port}"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"abc")
        assert await reader.readexactly(3) == b"abc"
        # An idle connection stays open through the drain, then is closed.
        began = time.monotonic()
        await shutdown(app, 10)
        took = time.monotonic() - began
        assert 0.4 <= took < 3
        assert await reader.read() == b""
        writer.close()
        assert service.stats.connections == 1
        assert service.stats.active == 0
        assert service.listening() == []
        # The port is free again.
        again = await asyncio.start_server(echo, "127.0.0.1", port)
        again.close()
        dest.close()

    run(main())
    text = caplog.text
    assert "closing 1 forwarded connections that are still open" in text
    assert "stopped: 1 connections" in text


def test_connection_that_ends_during_the_drain_is_not_cut(run: Runner, engine: Any) -> None:
    async def slow_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        await asyncio.sleep(0.3)
        writer.write(b"late answer")
        await writer.drain()
        writer.close()

    async def main() -> None:
        dest = await asyncio.start_server(slow_answer, "127.0.0.1", 0)
        service = PortForwardService(
            "tcp:0:interface=127.0.0.1",
            ("127.0.0.1", dest.sockets[0].getsockname()[1]),
            drain_timeout=5,
            engine=engine,
        )
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"?")
        await asyncio.sleep(0.05)
        began = time.monotonic()
        stopping = asyncio.ensure_future(service.stop())
        assert await reader.read() == b"late answer"
        writer.close()
        await stopping
        # Stop waited for the exchange, and no longer than it took.
        assert time.monotonic() - began < 2
        dest.close()

    run(main())


def test_bind_failure_names_the_address(run: Runner) -> None:
    async def main() -> None:
        blocker = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = blocker.sockets[0].getsockname()[1]
        service = PortForwardService(f"tcp:{port}:interface=127.0.0.1", ("127.0.0.1", 1))
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
            service.privileged_start()
        blocker.close()

    run(main())


def test_a_datagram_listener_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"'udp:0:interface=127\.0\.0\.1'.*not a stream endpoint"):
        PortForwardService("udp:0:interface=127.0.0.1", ("127.0.0.1", 1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        adopted = AdoptedServerEndpoint(udp.fileno())
        with pytest.raises(ValueError, match=rf"'fd:{udp.fileno()}'.*not a stream endpoint"):
            PortForwardService(adopted, ("127.0.0.1", 1))


def test_both_half_closes_and_a_reset(run: Runner, engine: Any) -> None:
    received: list[bytes] = []

    async def announcer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"banner")
        writer.write_eof()  # done talking, still listening
        received.append(await reader.read())
        writer.close()

    async def main() -> None:
        dest = await asyncio.start_server(announcer, "127.0.0.1", 0)
        service = PortForwardService(
            "tcp:0:interface=127.0.0.1",
            ("127.0.0.1", dest.sockets[0].getsockname()[1]),
            engine=engine,
        )
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b"banner"  # the destination's EOF came through
        writer.write(b"still here")
        writer.write_eof()
        for _ in range(200):
            if received and not service.forwarder.links:
                break
            await asyncio.sleep(0.01)
        assert received == [b"still here"]
        assert not service.forwarder.links  # both ends done: the link is gone
        writer.close()

        # A client that resets its connection mid-stream takes the link down.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read(6) == b"banner"
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        for _ in range(200):
            if not service.forwarder.links:
                break
            await asyncio.sleep(0.01)
        assert not service.forwarder.links
        await service.stop()
        assert service.stats.active == 0
        dest.close()

    run(main())


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback here")
def test_ipv6_listener_and_destination(run: Runner, engine: Any) -> None:
    async def main() -> None:
        dest = await asyncio.start_server(echo, "::1", 0)
        service = PortForwardService(
            r"tcp6:0:interface=\:\:1", ("::1", dest.sockets[0].getsockname()[1]), engine=engine
        )
        await service.start()
        address = service.listening()[0]
        assert address.startswith("tcp:[::1]:")
        reader, writer = await asyncio.open_connection("::1", int(address.rsplit(":", 1)[1]))
        writer.write(b"six")
        writer.write_eof()
        assert await reader.read() == b"six"
        writer.close()
        await service.stop()
        assert service.forwarder.destination.startswith("[::1]:")
        dest.close()

    run(main())


def test_tls_on_either_end_uses_the_transport_engine(
    run: Runner, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import ssl

    from support import make_tls_files

    from tapster.endpoints import client_from_string

    files = make_tls_files(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(files["cert"], files["key"])
    client_ctx = ssl.create_default_context(cafile=str(files["ca"]))

    async def exchange(port: int, ctx: ssl.SSLContext | None, payload: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost" if ctx else None
        )
        writer.write(payload)
        got = await reader.readexactly(len(payload))
        writer.close()  # over TLS: close_notify, an EOF for the proxy's TLS side
        await writer.wait_closed()
        await asyncio.sleep(0.05)  # the proxy reads that EOF before it stops
        return got

    async def main() -> None:
        plain = await asyncio.start_server(echo, "127.0.0.1", 0)
        secure = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
        plain_port = plain.sockets[0].getsockname()[1]
        secure_port = secure.sockets[0].getsockname()[1]

        # TLS in front, plain TCP behind.
        tls_listen = f"ssl:0:interface=127.0.0.1:cert={files['cert']}:key={files['key']}"
        with pytest.raises(ValueError, match="the listening endpoint uses TLS"):
            PortForwardService(tls_listen, ("127.0.0.1", plain_port), engine="splice")
        front = PortForwardService(tls_listen, ("127.0.0.1", plain_port))
        assert front.engine == "transport"
        await front.start()
        port = int(front.listening()[0].rsplit(":", 1)[1])
        assert await exchange(port, client_ctx, b"through tls") == b"through tls"
        await front.stop()

        # Plain TCP in front, TLS to the destination.
        dest = client_from_string(
            f"ssl:host=127.0.0.1:port={secure_port}:ca={files['ca']}:server_name=localhost"
        )
        back = PortForwardService("tcp:0:interface=127.0.0.1", dest)
        assert back.engine == "transport"
        await back.start()
        port = int(back.listening()[0].rsplit(":", 1)[1])
        assert await exchange(port, None, b"to tls") == b"to tls"
        await back.stop()
        plain.close()
        secure.close()

    with caplog.at_level(logging.INFO):
        run(main())
    # No "returning true from eof_received() has no effect when using ssl".
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_idle_connections_are_closed_busy_ones_are_not(
    run: Runner, engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tapster.portforward")

    async def main() -> None:
        dest = await asyncio.start_server(echo, "127.0.0.1", 0)
        service = PortForwardService(
            "tcp:0:interface=127.0.0.1",
            ("127.0.0.1", dest.sockets[0].getsockname()[1]),
            engine=engine,
            idle_timeout=0.4,
        )
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
        busy_r, busy_w = await asyncio.open_connection("127.0.0.1", port)
        idle_w.write(b"hello")
        assert await idle_r.readexactly(5) == b"hello"
        began = time.monotonic()
        # The busy connection talks every 0.2 s; the idle one says nothing.
        while time.monotonic() - began < 1.0:
            busy_w.write(b".")
            assert await busy_r.readexactly(1) == b"."
            await asyncio.sleep(0.2)
        assert await asyncio.wait_for(idle_r.read(), 1) == b""  # closed by the proxy
        busy_w.write(b"!")
        assert await busy_r.readexactly(1) == b"!"
        assert service.stats.idle_closed == 1
        idle_w.close()
        busy_w.close()
        await service.stop()
        dest.close()

    run(main())
    assert "closing the idle connection from 127.0.0.1:" in caplog.text
    assert re.search(
        r"connection from 127\.0\.0\.1:\d+ closed after [\d.]+ s: 5 bytes", caplog.text
    )
    assert "1 closed when idle" in caplog.text
