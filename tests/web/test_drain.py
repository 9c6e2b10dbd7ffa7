"""A stop (SIGTERM, or an old worker told to drain by a reload) drops no request.

Two races, each driven here on a real ``tapster web`` on both loops: a client whose
connection was accepted but whose request had not arrived when the stop began, and a
keep-alive client that sends its next request just as the server closes the idle
connection. The first must be answered; the second must see end of file (which HTTP
clients retry on a reused connection), never a reset.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import pytest

from tapster.web._config import WebConfig
from tapster.web._server import WebServer

SLOW_APP = """\
import pathlib, time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        pathlib.Path(__file__).with_name("started").touch()
        time.sleep(1.5)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""

LOOPS = ["uvloop", "asyncio"]


def _start(serve, tmp_path: Path, loop: str):  # type: ignore[no-untyped-def]
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    return serve("--wsgi", "slowapp:app", cwd=tmp_path, runner=["--loop", loop])


def _busy(port: int, tmp_path: Path) -> socket.socket:
    """A request the application takes 1.5 s to answer: the stop drains behind it."""
    busy = socket.create_connection(("127.0.0.1", port), timeout=10)
    busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 10
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, "the application was never called"
        time.sleep(0.02)
    return busy


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_connection_accepted_before_the_stop_is_answered(
    serve, tmp_path: Path, loop: str
) -> None:
    web = _start(serve, tmp_path, loop)
    busy = _busy(web.port, tmp_path)
    early = socket.create_connection(("127.0.0.1", web.port), timeout=10)
    time.sleep(0.2)  # accepted by the server; its request is still "on its way"
    web.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    early.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with early:
        answer = _read_all(early)
    with busy:
        assert _read_all(busy).endswith(b"ok")
    assert web.proc.wait(15) == 0
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"ok"), answer
    assert b"Connection: close" in answer


def _run_on(loop_name: str, main):  # type: ignore[no-untyped-def]
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_an_idle_keep_alive_connection_is_closed_without_a_reset(tmp_path: Path, loop: str) -> None:
    """The stop closes an idle keep-alive connection while the client's next request
    is already in the server's socket, unread (sent, then the drain begins within the
    same turn of the loop, as when a stop and a request arrive together). Closing
    such a socket outright makes the kernel reset it; the client must see end of
    file instead, which HTTP clients retry on a reused connection."""
    (tmp_path / "a.txt").write_text("a")
    server = WebServer(WebConfig(root=tmp_path, access_log=False))

    async def main() -> tuple[bytes, bytes]:
        server.start()
        listener = await asyncio.get_running_loop().create_server(server.protocol, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.setblocking(False)
        try:
            loop_ = asyncio.get_running_loop()
            await loop_.sock_sendall(client, b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while not first.endswith(b"\r\n\r\na"):
                first += await loop_.sock_recv(client, 65536)
            await asyncio.sleep(0.1)  # idle, between two requests
            client.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            server.begin_drain()  # in the same turn of the loop: the request is unread
            listener.close()
            rest = b""
            while chunk := await asyncio.wait_for(loop_.sock_recv(client, 65536), 5):
                rest += chunk
            return first, rest
        finally:
            client.close()
            await server.drain()
            await server.close()

    try:
        first, rest = _run_on(loop, main)
    except ConnectionResetError:
        pytest.fail("the server reset a keep-alive connection it closed while stopping")
    assert first.startswith(b"HTTP/1.1 200 "), first
    assert rest == b""  # end of file: the second request was not answered, nor reset
