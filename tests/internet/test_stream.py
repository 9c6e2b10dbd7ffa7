"""Stream servers on real sockets: TCP on 127.0.0.1 and [::1], Unix, drain on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from typing import Any

import pytest
from support import free_port

from tapster.endpoints import ListenError, TCPServerEndpoint, client_from_string
from tapster.internet import StreamServerService, TCPServer, UNIXServer
from tapster.service import Application, ServiceStartError, shutdown


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def round_trip(host: str, port: int, payload: bytes = b"hello") -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(payload)
    data = await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()
    return data


@pytest.mark.parametrize("handler", [echo, EchoProtocol], ids=["stream", "protocol"])
def test_tcp_server_echoes_and_reports_where_it_listens(run_async: Any, handler: Any) -> None:
    port = free_port()
    service = TCPServer(port, handler, interface="127.0.0.1")

    async def scenario() -> None:
        await service.start()  # readiness: listening when start returns
        assert service.listening() == [f"tcp:127.0.0.1:{port}"]
        assert await round_trip("127.0.0.1", port) == b"hello"
        await service.stop()
        assert service.listening() == []
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    run_async(scenario())


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 on this machine")
def test_tcp6_on_loopback(run_async: Any) -> None:
    service = StreamServerService("tcp6:0:interface=\\:\\:1", echo)

    async def scenario() -> None:
        await service.start()
        [address] = service.listening()
        assert address.startswith("tcp:[::1]:")
        port = int(address.rsplit(":", 1)[1])
        assert await round_trip("::1", port) == b"hello"
        client = client_from_string(f"tcp:host=\\:\\:1:port={port}")
        reader, writer = await client.open_connection()
        writer.write(b"six")
        assert await reader.readexactly(3) == b"six"
        writer.close()
        await service.stop()

    run_async(scenario())


def test_bind_happens_in_privileged_start_without_a_loop() -> None:
    service = StreamServerService("tcp:0:interface=127.0.0.1", echo)
    service.privileged_start()  # no event loop is running here
    [address] = service.listening()
    port = int(address.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # the kernel accepts into the backlog: the socket listens
    service.release_privileged()
    assert service.listening() == []


def test_bind_failure_names_the_address(run_async: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = TCPServer(port, echo, interface="127.0.0.1")
        with pytest.raises(ListenError) as info:
            service.privileged_start()
        assert str(info.value) == (f"Couldn't listen on 127.0.0.1:{port}: address already in use")
        app = Application("app")
        service.name = "web"
        service.set_parent(app)
        with pytest.raises(ServiceStartError, match="'web' failed to start: Couldn't listen on"):
            run_async(app.start())


def test_unix_server_replaces_a_stale_socket_but_not_a_live_one(
    run_async: Any, tmp_path: Any
) -> None:
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: stale
    service = UNIXServer(path, echo, mode=0o600)

    async def scenario() -> None:
        await service.start()
        assert service.listening() == [f"unix:{path}"]
        assert (tmp_path / "s.sock").stat().st_mode & 0o777 == 0o600
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        second = UNIXServer(path, echo)
        with pytest.raises(ListenError, match="another process is listening on it"):
            second.privileged_start()
        await service.stop()
        assert not (tmp_path / "s.sock").exists()

    run_async(scenario())


def test_unix_server_refuses_to_remove_a_regular_file(tmp_path: Any) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("precious")
    with pytest.raises(ListenError, match="not a socket"):
        UNIXServer(str(path), echo).privileged_start()
    assert path.read_text() == "precious"


def test_stop_drains_a_slow_client_then_closes_the_rest(run_async: Any) -> None:
    finished: list[str] = []

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line == b"quick\n":
            await asyncio.sleep(0.2)
        else:
            await asyncio.sleep(3600)
        writer.write(b"done " + line)
        await writer.drain()
        finished.append(line.decode().strip())

    service = StreamServerService("tcp:0:interface=127.0.0.1", slow)

    async def scenario() -> None:
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        quick_r, quick_w = await asyncio.open_connection("127.0.0.1", port)
        stuck_r, stuck_w = await asyncio.open_connection("127.0.0.1", port)
        quick_w.write(b"quick\n")
        stuck_w.write(b"stuck\n")
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await shutdown(service, 1.0)
        elapsed = time.monotonic() - started
        # The listener closed first: no new connections.
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        # The quick one finished its reply; the stuck one was cut at the deadline.
        assert await quick_r.read() == b"done quick\n"
        assert await stuck_r.read() == b""
        assert 0.6 < elapsed < 1.5
        assert finished == ["quick"]
        quick_w.close()
        stuck_w.close()

    run_async(scenario())


def test_a_failing_handler_is_logged_and_the_server_goes_on(
    run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def picky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        if data == b"bad":
            raise ValueError("did not like it")
        writer.write(data)

    service = StreamServerService("tcp:0:interface=127.0.0.1", picky)

    async def scenario() -> None:
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"bad")
        assert await reader.read() == b""
        writer.close()
        assert await round_trip("127.0.0.1", port, b"good") == b"good"
        await service.stop()

    with caplog.at_level(logging.ERROR, logger="tapster.internet"):
        run_async(scenario())
    assert "did not like it" in caplog.text


def test_protocols_hear_stop_requested_and_can_finish_early(run_async: Any) -> None:
    told: list[str] = []

    class KeepAlive(asyncio.Protocol):
        """Holds the connection open until the server asks it to stop."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def stop_requested(self) -> None:
            told.append("stop")
            self.transport.close()

    service = StreamServerService("tcp:0:interface=127.0.0.1", KeepAlive)

    async def scenario() -> float:
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        assert service.connections == 1
        started = time.monotonic()
        await shutdown(service, 5.0)
        elapsed = time.monotonic() - started
        assert await reader.read() == b""
        writer.close()
        return elapsed

    assert run_async(scenario()) < 1.0  # not the whole 5 s budget
    assert told == ["stop"]


def test_a_protocol_factory_that_raises_does_not_stop_the_server(
    run_async: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls = {"n": 0}

    def flaky() -> asyncio.Protocol:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("factory broke")
        return EchoProtocol()

    service = StreamServerService("tcp:0:interface=127.0.0.1", flaky)

    async def scenario() -> None:
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b""  # the first connection is closed
        writer.close()
        assert await round_trip("127.0.0.1", port) == b"hello"
        await service.stop()

    with caplog.at_level(logging.ERROR, logger="tapster.internet"):
        run_async(scenario())
    assert "factory broke" in caplog.text


def test_stop_and_start_again_rebinds(run_async: Any) -> None:
    service = StreamServerService("tcp:0:interface=127.0.0.1", echo)

    async def scenario() -> None:
        await service.start()
        first = service.listening()
        await service.stop()
        await service.start()
        second = service.listening()
        assert len(first) == len(second) == 1
        port = int(second[0].rsplit(":", 1)[1])
        assert await round_trip("127.0.0.1", port, b"again") == b"again"
        await service.stop()

    run_async(scenario())


def test_a_handler_that_cannot_be_called_is_refused_when_built() -> None:
    from tapster.internet import TCPServer

    with pytest.raises(TypeError, match="not int"):
        TCPServer(0, 42, interface="127.0.0.1")  # type: ignore[arg-type]


def test_a_burst_of_connections_is_taken_in_one_pass_while_the_loop_is_busy(
    run_async: Any,
) -> None:
    """Accepting one connection per pass of the loop makes the last of a burst wait
    behind every pass the busy connections make; the listen queue is taken at once."""
    made: list[int] = []
    passes = 0

    class Counting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(passes)

    service = StreamServerService("tcp:0:interface=127.0.0.1", Counting)
    burst = 40

    async def scenario() -> None:
        nonlocal passes
        loop = asyncio.get_running_loop()
        busy = True

        def busy_pass() -> None:
            # Stands in for busy connections: every pass of the loop costs 5 ms.
            nonlocal passes
            if busy:
                passes += 1
                time.sleep(0.005)
                loop.call_soon(busy_pass)

        service.privileged_start()
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        clients = []
        try:
            for _ in range(burst):  # the kernel completes these into the listen queue
                clients.append(socket.create_connection(("127.0.0.1", port)))
            passes = 0
            loop.call_soon(busy_pass)
            started = time.monotonic()
            while len(made) < burst and time.monotonic() - started < 10:
                await asyncio.sleep(0)
            busy = False
            assert len(made) == burst
            # Counted in passes of the loop, not in seconds, so a slow machine
            # cannot fail it: one accept per pass would need at least 40 of them.
            assert made[-1] <= 8, f"the last connection was set up after {made[-1]} passes"
        finally:
            busy = False
            for client in clients:
                client.close()
            await service.stop()

    run_async(scenario())


class _BlockingSocketEndpoint(TCPServerEndpoint):
    """An endpoint (as a plugin might write one) that hands over a blocking socket."""

    def bind(self) -> list[socket.socket]:
        [sock] = super().bind()
        sock.setblocking(True)
        return [sock]


def test_a_blocking_listening_socket_does_not_hang_the_loop() -> None:
    """The listen queue is emptied with plain accept() calls, which must not block.

    On the standard loop only: uvloop's reader (libuv's poll handle) makes the
    descriptor non-blocking by itself. The loop runs in a thread of its own, as a
    loop stuck in accept() cannot time out.
    """
    service = StreamServerService(_BlockingSocketEndpoint(0, "127.0.0.1"), EchoProtocol)
    service.privileged_start()
    port = int(service.listening()[0].rsplit(":", 1)[1])
    stop = threading.Event()

    async def serve_until_stopped() -> None:
        await service.start()
        while not stop.is_set():
            await asyncio.sleep(0.01)
        await service.stop()

    runner = asyncio.Runner()
    loop_thread = threading.Thread(target=lambda: runner.run(serve_until_stopped()))
    loop_thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"ping")
            # A hung loop never answers: recv times out.
            assert client.recv(4) == b"ping"
    finally:
        stop.set()
        # Unblock a loop stuck in accept() so that the thread can end.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            pass
        loop_thread.join(10)
        if not loop_thread.is_alive():
            runner.close()
    assert not loop_thread.is_alive(), "the loop is stuck in accept()"


def test_tls_connections_are_counted_drained_and_cut_like_tcp_ones(
    run_async: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """uvloop's TLS transport takes no weak reference: the server must still see the connection."""
    from support import make_tls_files

    files = make_tls_files(tmp_path)
    client_context = ssl.create_default_context(cafile=str(files["ca"]))

    class Delayed(asyncio.Protocol):
        """Answers ``quick`` after a pause and closes; never answers anything else."""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            if data == b"quick\n":
                asyncio.get_running_loop().call_later(0.3, self.answer, data)

        def answer(self, data: bytes) -> None:
            self.transport.write(b"done " + data)
            self.transport.close()

    service = StreamServerService(
        f"ssl:0:interface=127.0.0.1:cert={files['cert']}:key={files['key']}", Delayed
    )

    async def scenario() -> None:
        await service.start()
        port = int(service.listening()[0].rsplit(":", 1)[1])
        streams = []
        for line in (b"quick\n", b"stuck\n"):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
            )
            writer.write(line)
            streams.append((reader, writer))
        await asyncio.sleep(0.1)
        assert service.connections == 2
        started = time.monotonic()
        await shutdown(service, 1.0)
        elapsed = time.monotonic() - started
        (quick_r, quick_w), (stuck_r, stuck_w) = streams
        # The drain waited for the answer in flight, then cut the stuck one at the deadline.
        assert await quick_r.read() == b"done quick\n"
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            assert await stuck_r.read() == b""
        assert 0.6 < elapsed < 1.5
        assert service.connections == 0
        for writer in (quick_w, stuck_w):
            writer.close()

    with caplog.at_level(logging.INFO):
        run_async(scenario())
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "closed 1 connection(s) on ssl:127.0.0.1" in caplog.text
