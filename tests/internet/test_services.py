"""Datagram servers, timers, reconnecting clients, and accept errors under EMFILE."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from support import free_port, make_tls_files

from tapster.endpoints import TCPClientEndpoint
from tapster.internet import (
    Backoff,
    ClientService,
    DatagramServerService,
    SSLServer,
    StreamServerService,
    TimerService,
    UDPServer,
)
from tapster.service import ServiceError, shutdown


class UDPEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data.upper(), addr)


def test_udp_server(run_async: Any) -> None:
    service = UDPServer(0, UDPEcho, interface="127.0.0.1")

    async def scenario() -> None:
        await service.start()
        [address] = service.listening()
        assert address.startswith("udp:127.0.0.1:")
        port = int(address.rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"shout", ("127.0.0.1", port))
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(None, client.recv, 100)
        assert data == b"SHOUT"
        await service.stop()
        assert service.listening() == []

    run_async(scenario())


def test_datagram_and_stream_endpoints_are_not_mixed() -> None:
    with pytest.raises(ValueError, match="not a datagram endpoint"):
        DatagramServerService("tcp:0", UDPEcho)
    with pytest.raises(ValueError, match="not a stream endpoint"):
        StreamServerService("udp:0", asyncio.Protocol)


def test_ssl_server_convenience(run_async: Any, tmp_path: Path) -> None:
    import ssl

    files = make_tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files["cert"], files["key"])

    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi over tls\n")
        await writer.drain()

    service = SSLServer(0, hello, context, interface="127.0.0.1")

    async def scenario() -> None:
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        client_context = ssl.create_default_context(cafile=str(files["ca"]))
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
        )
        assert await reader.readline() == b"hi over tls\n"
        writer.close()
        await service.stop()

    run_async(scenario())


def test_timer_calls_sync_and_async_and_survives_errors(
    run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def tick(label: str) -> None:
        calls.append(label)
        if calls.count(label) == 2:  # its own second call (the async timer's may come first)
            raise RuntimeError("second call fails")

    async def atick() -> None:
        await asyncio.sleep(0)
        calls.append("async")

    sync_timer = TimerService(0.02, tick, "sync", name="sync-timer")
    async_timer = TimerService(0.02, atick, now=False)

    async def scenario() -> None:
        await sync_timer.start()
        assert calls == []  # the first call comes right after start, not inside it
        await async_timer.start()
        await asyncio.sleep(0.2)
        await sync_timer.stop()
        await async_timer.stop()

    with caplog.at_level(logging.ERROR, logger="tapster.internet"):
        run_async(scenario())
    assert calls.count("sync") >= 4  # went on after the failing second call
    assert calls.count("async") >= 3
    assert "timer sync-timer: call failed: second call fails" in caplog.text
    frozen = list(calls)
    run_async(asyncio.sleep(0.06))
    assert calls == frozen  # stopped means no more calls


def test_timer_stop_waits_for_a_running_call(run_async: Any) -> None:
    events: list[str] = []

    async def slow() -> None:
        events.append("begin")
        await asyncio.sleep(0.2)
        events.append("end")

    timer = TimerService(10, slow)

    async def scenario() -> None:
        await timer.start()
        await asyncio.sleep(0.05)
        await timer.stop()
        events.append("stopped")

    run_async(scenario())
    assert events == ["begin", "end", "stopped"]


def test_timer_call_that_overruns_the_budget_is_cancelled(run_async: Any) -> None:
    async def forever() -> None:
        await asyncio.sleep(3600)

    timer = TimerService(10, forever, name="stuck-timer")

    async def scenario() -> float:
        await timer.start()
        await asyncio.sleep(0.02)
        started = time.monotonic()
        await shutdown(timer, 0.3)
        return time.monotonic() - started

    assert run_async(scenario()) < 2.0
    assert not timer.running


def test_backoff_policy_grows_with_jitter_and_can_give_up() -> None:
    policy = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.5, max_attempts=6)
    delays = [policy(n) for n in range(6)]
    for attempt, delay in enumerate(delays):
        full = min(1.0, 0.1 * 2**attempt)
        assert delay is not None and full * 0.5 <= delay <= full
    assert policy(6) is None
    assert len({policy(3) for _ in range(20)}) > 1  # jitter: not all the same


class Greeting(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.got_data = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.got_data.set()


def test_client_service_backs_off_until_the_port_opens(run_async: Any) -> None:
    port = free_port()

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"welcome")
        await writer.drain()
        await reader.read()

    client = ClientService(
        TCPClientEndpoint("127.0.0.1", port, timeout=2),
        Greeting,
        Backoff(initial=0.05, maximum=0.2),
    )
    server = StreamServerService(f"tcp:{port}:interface=127.0.0.1", greet)

    async def scenario() -> None:
        await client.start()
        await asyncio.sleep(0.4)  # nothing listens yet: several failed attempts
        failed = client.attempts
        assert failed >= 3
        await server.start()
        protocol = await asyncio.wait_for(client.when_connected(), 5)
        assert isinstance(protocol, Greeting)
        await asyncio.wait_for(protocol.got_data.wait(), 5)
        assert protocol.received == b"welcome"
        # Lose the connection: the client reconnects by itself.
        await shutdown(server, 0.3)
        await server.start()
        for _ in range(100):
            again = await asyncio.wait_for(client.when_connected(), 5)
            if again is not protocol:
                break
            await asyncio.sleep(0.05)
        assert again is not protocol
        await client.stop()
        with pytest.raises(ServiceError, match="not running"):
            await client.when_connected()
        await shutdown(server, 0.3)

    run_async(scenario())


def test_client_service_gives_up_when_the_policy_says_so(run_async: Any) -> None:
    port = free_port()
    client = ClientService(
        f"tcp:host=127.0.0.1:port={port}",
        Greeting,
        Backoff(initial=0.01, max_attempts=2),
    )

    async def scenario() -> None:
        await client.start()
        with pytest.raises(ServiceError, match="gave up"):
            await asyncio.wait_for(client.when_connected(), 5)
        await client.stop()

    run_async(scenario())


EMFILE_SERVER = textwrap.dedent(
    """
    import asyncio, logging, resource, sys
    from tapster.internet import StreamServerService

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    async def echo(reader, writer):
        while data := await reader.read(100):
            writer.write(data)

    async def main():
        service = StreamServerService("tcp:0:interface=127.0.0.1", echo)
        await service.start()
        import os
        used = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 5, used + 5))
        print(service.listening()[0].rsplit(":", 1)[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await service.stop()

    if sys.argv[1] == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
    """
)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_running_out_of_descriptors_is_logged_and_survived(tmp_path: Path, loop: str) -> None:
    script = tmp_path / "server.py"
    script.write_text(EMFILE_SERVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), loop],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(15)]
        time.sleep(0.5)  # the server hits EMFILE while accepting these
        for client in clients:
            client.close()
        # Once descriptors are free again, the server accepts and serves.
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                    conn.sendall(b"alive")
                    if conn.recv(100) == b"alive":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not recover"
            time.sleep(0.1)
        _, errors = proc.communicate("", timeout=10)
        # Logged once, not once per retry.
        assert errors.lower().count("too many open files; pausing") == 1, errors
        assert "Traceback" not in errors
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class SlottedGreeting(asyncio.Protocol):
    """A protocol whose instances take no new attributes (no connection_lost hook)."""

    __slots__ = ("received",)

    def __init__(self) -> None:
        self.received = b""

    def data_received(self, data: bytes) -> None:
        self.received += data


def test_client_service_over_tls_with_a_slotted_protocol(run_async: Any, tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"secure welcome")
        await writer.drain()
        await reader.read()

    server = StreamServerService(
        f"ssl:0:interface=127.0.0.1:cert={files['cert']}:key={files['key']}", greet
    )

    async def scenario() -> None:
        await server.start()
        port = int(server.listening()[0].rsplit(":", 1)[1])
        client = ClientService(
            f"ssl:host=127.0.0.1:port={port}:ca={files['ca']}",
            SlottedGreeting,
            Backoff(initial=0.05, maximum=0.1),
        )
        await client.start()
        first = await asyncio.wait_for(client.when_connected(), 5)
        assert isinstance(first, SlottedGreeting)
        for _ in range(100):
            if first.received:
                break
            await asyncio.sleep(0.02)
        assert first.received == b"secure welcome"
        # Losing the connection is noticed even without the hook.
        await shutdown(server, 0.2)
        for _ in range(100):
            if client.protocol is None:
                break
            await asyncio.sleep(0.02)
        assert client.protocol is None
        await client.stop()

    run_async(scenario())
