"""``tapster web --asgi``: the HTTP scope, streamed bodies both ways, disconnects, the
spec's error cases, lifespan, WebSockets, proxies and limits, on both loops.

Every test runs a real ``tapster web`` subprocess and talks to it with real clients
(``httpx``, the ``websockets`` library, raw sockets where the test needs control).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from asgi_apps import write_apps
from support import free_port, make_tls_files, run_tapster, wait_for, wait_for_port
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

LOOPS = [pytest.param("asyncio", id="asyncio"), pytest.param("uvloop", id="uvloop")]


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    return write_apps(tmp_path)


def _start(
    serve,
    apps: Path,
    *args: str,
    loop: str = "uvloop",
    app: str = "plainapp:app",
    env=None,
    runner: tuple[str, ...] = (),
):
    environ = {"MARKS": str(apps / "marks"), **(env or {})}
    return serve("--asgi", app, *args, cwd=apps, env=environ, runner=["--loop", loop, *runner])


def _wait_for(path: Path) -> str:
    """The text of the mark file ``path`` once the application has written it."""
    return str(wait_for(lambda: path.exists() and path.read_text(), 10.0, path.name))


def _flood(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send ``data`` over and over for ``seconds`` without blocking; the bytes the kernel took."""
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sent += sock.send(data)
        except BlockingIOError:
            time.sleep(0.05)
    return sent


def _rss_kib(web) -> int:
    with open(f"/proc/{web.proc.pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


def _stop(web) -> tuple[int, str]:
    web.proc.send_signal(signal.SIGTERM)
    _out, err = web.proc.communicate(timeout=20)
    return web.proc.returncode, err


# -- the HTTP scope ----------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_scope_and_body(serve, apps: Path, loop: str) -> None:
    web = _start(serve, apps, loop=loop)
    with httpx.Client(base_url=web.base) as client:
        r = client.post("/a%20b/scope?x=1&y=%20", content=b"12345", headers={"X-Two": "2"})
    scope = r.json()
    assert scope["type"] == "http" and scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1" and scope["method"] == "POST"
    assert scope["scheme"] == "http" and scope["root_path"] == ""
    assert scope["path"] == "/a b/scope" and scope["raw_path"] == "/a%20b/scope"
    assert scope["query_string"] == "x=1&y=%20"
    assert ["x-two", "2"] in scope["headers"] and ["host", f"127.0.0.1:{web.port}"] in scope[
        "headers"
    ]
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] > 0
    assert scope["server"] == ["127.0.0.1", web.port]
    assert scope["state"] == {"started": "yes"}  # from the lifespan start-up
    assert scope["body_length"] == 5
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)


def test_root_path(serve, apps: Path) -> None:
    web = _start(serve, apps, "--root-path", "/api/")
    scope = httpx.get(web.base + "/items/scope").json()
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/scope" and scope["raw_path"] == "/api/items/scope"


def test_keep_alive_and_pipelining(serve, apps: Path) -> None:
    web = _start(serve, apps)
    reply = web.raw(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert reply.count(b"HTTP/1.1 200 OK") == 3
    assert reply.index(b"Hello, world!") < reply.index(b"abc") < reply.index(b"part2")
    assert b"Transfer-Encoding: chunked" in reply and reply.endswith(b"0\r\n\r\n")


# -- bodies, both ways -------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_request_body_streams(serve, apps: Path, loop: str) -> None:
    web = _start(serve, apps, loop=loop)

    def parts():
        for _ in range(64):
            yield os.urandom(65536)

    r = httpx.post(web.base + "/count-upload", content=parts(), timeout=20)
    total, count = map(int, r.text.split())
    assert total == 64 * 65536 and count > 1  # arrived in parts, not as one


def test_upload_is_held_back(serve, apps: Path) -> None:
    """A client sending faster than the application reads is stopped by TCP, not buffered."""
    # The application then sleeps 30 s: a short budget keeps the stop short.
    web = _start(serve, apps, "--max-body", "1G", runner=("--shutdown-timeout", "1"))
    size = 200 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", web.port)) as s:
        s.sendall(b"POST /slow-upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        sent = _flood(s, b"\0" * 65536, 3)
        # The kernel's buffers on both sides hold a few MiB; the server took 64 KiB more.
        assert sent < 24 * 1024 * 1024
    assert _wait_for(apps / "marks" / "first-part")


def test_max_body(serve, apps: Path) -> None:
    web = _start(serve, apps, "--max-body", "1K")
    assert httpx.post(web.base + "/echo", content=b"x" * 1024).status_code == 200
    assert httpx.post(web.base + "/echo", content=b"x" * 1025).status_code == 413
    # Chunked (no length to check first): a 413, or the connection cut if the
    # application had begun answering, once it passes the limit.
    try:
        r = httpx.post(web.base + "/echo", content=iter([b"x" * 1000, b"y" * 1000]))
    except httpx.HTTPError:
        pass
    else:
        assert r.status_code == 413


@pytest.mark.parametrize("loop", LOOPS)
def test_response_streams(serve, apps: Path, loop: str) -> None:
    web = _start(serve, apps, loop=loop)
    with httpx.stream("GET", web.base + "/stream") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        started = time.monotonic()
        arrivals = []
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic() - started, chunk))
    assert b"".join(c for _, c in arrivals) == b"part0\npart1\npart2\n"
    assert arrivals[0][0] < 0.25 < arrivals[-1][0]  # the first part did not wait for the rest


def test_http10_response_ends_with_close(serve, apps: Path) -> None:
    web = _start(serve, apps)
    reply = web.raw(b"GET /stream HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in reply and b"chunked" not in reply
    assert reply.endswith(b"part0\npart1\npart2\n")


@pytest.mark.parametrize("loop", LOOPS)
def test_slow_reader_holds_the_application_back(serve, apps: Path, loop: str) -> None:
    web = _start(serve, apps, loop=loop)
    marks = apps / "marks"
    with socket.create_connection(("127.0.0.1", web.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(2)
        sent = int(_wait_for(marks / "endless-sent"))
        time.sleep(1)
        # Held back: no more than the socket buffers and the transport's high-water mark.
        assert int((marks / "endless-sent").read_text()) == sent
        assert sent * 65536 < 32 * 1024 * 1024
        assert _rss_kib(web) < 120 * 1024
    # The client left: the application's next send raises (spec 2.4), and it stops.
    assert _wait_for(marks / "endless-disconnected")


def test_disconnect_is_told(serve, apps: Path) -> None:
    web = _start(serve, apps)
    with socket.create_connection(("127.0.0.1", web.port)) as s:
        s.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"hello" in s.recv(4096)
    assert _wait_for(apps / "marks" / "disconnect").strip() == "http.disconnect"


# -- the spec's error cases -------------------------------------------------------


def test_application_errors(serve, apps: Path) -> None:
    web = _start(serve, apps)
    for path in ("/raise-before", "/raise-after-start", "/body-first", "/no-answer", "/bad-header"):
        status, _, body = web.get(path)
        assert status == 500, path
        assert b"Traceback" not in body and b"boom" not in body
    # After the head went out, the connection is cut: the body is short.
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(web.base + "/raise-after")
    # Trailers are not offered: the response goes out without them, cleanly.
    r = httpx.get(web.base + "/trailers")
    assert r.status_code == 200 and r.text == "with trailers"
    # The server goes on.
    assert httpx.get(web.base + "/").text == "Hello, world!"
    code, err = _stop(web)
    assert code == 0
    failures = [line for line in err.splitlines() if "The ASGI application failed" in line]
    assert len(failures) == 5 and all("ERROR" in line for line in failures)
    for text in (
        "RuntimeError: boom before start",
        "RuntimeError: boom before the body",
        "RuntimeError: boom after start",
        "RuntimeError: http.response.body sent before http.response.start",
        "ValueError: http.response.start: a header contains a line break",
    ):
        assert err.count(text) == 1, text
    assert err.count("returned without answering GET /no-answer") == 1
    # raise-before, raise-after-start, raise-after, body-first, bad-header
    assert err.count("Traceback") == 5


# -- lifespan ----------------------------------------------------------------------


def test_response_headers_are_each_their_own(serve, apps: Path) -> None:
    """Encoded header blocks are kept by their pairs (``_asgi._BLOCKS``): each response
    still carries its own headers, new or repeated, tuples or lists, past the store's
    bound; a bad header fails every time; a kept ``Connection: close`` closes every time."""
    web = _start(serve, apps)
    with httpx.Client(base_url=web.base) as client:
        for query in [*map(str, range(300)), "5", "5", "7", "list1", "list1", "list2"]:
            r = client.get(f"/headers?{query}")
            assert r.status_code == 200 and r.headers["x-echo"] == query == r.text
            assert "connection" not in r.headers
        for _ in range(2):
            assert client.get("/headers?evil").status_code == 500
            r = client.get("/headers?close")
            assert r.headers["x-echo"] == "close" and r.headers["connection"] == "close"
    code, err = _stop(web)
    assert code == 0 and err.count("ValueError: http.response.start: a header contains") == 2


def test_lifespan_startup_and_shutdown(serve, apps: Path) -> None:
    web = _start(serve, apps)
    marks = apps / "marks"
    # The port is bound before start-up (a connection waits in the kernel's queue), so
    # it may accept before the application's start-up is done; no request is answered
    # before it is.
    assert httpx.get(web.base + "/", timeout=10).status_code == 200
    assert (marks / "startup").exists()
    # A request in progress at SIGTERM finishes before the shut-down event.
    with httpx.Client(base_url=web.base, timeout=10) as client:
        import threading

        result = {}

        def slow() -> None:
            result["r"] = client.get("/sleep?1")

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)
        web.proc.send_signal(signal.SIGTERM)
        assert not (marks / "shutdown").exists()
        t.join()
    assert result["r"].text == "slept"
    web.proc.communicate(timeout=20)
    assert web.proc.returncode == 0
    assert (marks / "shutdown").exists()


def test_a_client_during_startup_waits_and_is_answered_after_it(serve, apps: Path) -> None:
    web = _start(serve, apps, env={"SLOW_STARTUP": "1.5"})  # the port accepts at once
    reply = httpx.get(web.base + "/", timeout=10)
    assert reply.status_code == 200  # queued, not refused
    assert (apps / "marks" / "startup").exists()  # and answered only once start-up was done


def test_lifespan_startup_failure(apps: Path) -> None:
    port = free_port()
    res = run_tapster(
        ["web", "--asgi", "plainapp:app", "--listen", f"tcp:{port}:interface=127.0.0.1"],
        cwd=apps,
        env={"FAIL_STARTUP": "1", "MARKS": str(apps / "marks")},
    )
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if "INFO" not in line]
    assert len(errors) == 1, res.stderr
    assert "start-up failed: RuntimeError: no database" in errors[0]


def test_lifespan_on_requires_support(serve, apps: Path) -> None:
    web = _start(serve, apps, app="nolifespan:app")
    assert httpx.get(web.base + "/").text == "no lifespan"
    res = run_tapster(
        ["web", "--asgi", "nolifespan:app", "--lifespan", "on", "--listen", f"tcp:{free_port()}"],
        cwd=apps,
    )
    assert res.returncode == 1 and "does not support lifespan" in res.stderr


def test_bad_application_is_a_usage_error(apps: Path) -> None:
    for argv, text in (
        (["--asgi", "nosuch:app"], "cannot import"),
        (["--asgi", "plainapp:nothing"], "has no"),
        (["--asgi", "plainapp:app", "--wsgi", "plainapp:app"], "not both"),
        (["--asgi", "plainapp:app", "--root-path", "api"], "must start with /"),
        (["--asgi", "plainapp:app", "--forwarded-allow-ips", "10.0.0.300"], "not an IP"),
    ):
        res = run_tapster(["web", *argv], cwd=apps)
        assert res.returncode == 2, argv
        assert text in res.stderr and "Traceback" not in res.stderr


# -- WebSockets ---------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_websocket_echo(serve, apps: Path, loop: str) -> None:
    web = _start(serve, apps, loop=loop)
    url = f"ws://127.0.0.1:{web.port}/ws"
    with ws_connect(url) as ws:
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send(b"\x00\x01" * 40000)  # several frames' worth
        assert ws.recv() == b"\x00\x01" * 40000
        ws.ping(b"are you there").wait(5)  # answered with a pong
    assert _wait_for(apps / "marks" / "ws-disconnect").strip() == "1000"


def test_websocket_subprotocols_and_close_codes(serve, apps: Path) -> None:
    web = _start(serve, apps)
    with ws_connect(f"ws://127.0.0.1:{web.port}/ws/proto", subprotocols=["a", "b"]) as ws:
        assert ws.subprotocol == "b"
        assert ws.recv() == "a,b"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 4001 and closed.value.rcvd.reason == "done"


def test_websocket_refused_and_errors(serve, apps: Path) -> None:
    web = _start(serve, apps)
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"ws://127.0.0.1:{web.port}/ws/refuse")
    assert refused.value.response.status_code == 403
    # A bad handshake (no key) is a 400, not a crash.
    reply = web.raw(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400")


def test_websocket_limits(serve, apps: Path) -> None:
    web = _start(serve, apps, "--ws-max-size", "64K")
    with ws_connect(f"ws://127.0.0.1:{web.port}/ws", max_size=None) as ws:
        ws.send("x" * 65536)
        assert len(ws.recv()) == 65536
        ws.send("x" * 65537)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 1009
    # A flood while the application takes nothing: the server stops reading.
    # (close_timeout: the server reads nothing more, so the closing handshake cannot finish)
    slow = f"ws://127.0.0.1:{web.port}/ws/slow"
    with ws_connect(slow, max_size=None, close_timeout=0.5) as ws:
        frame = b"\x82\xfe\xff\xff\x00\x00\x00\x00" + b"\0" * 65535  # masked binary frames
        assert _flood(ws.socket, frame, 2) < 24 * 1024 * 1024
    assert _rss_kib(web) < 120 * 1024


_WS_OPENING = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
    """One client frame (RFC 6455 5.2), masked as a client's must be unless told otherwise."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    else:
        head += bytes([bit | 126]) + size.to_bytes(2, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class _ServerFrames:
    """Reads the 101 answer, then the server's (unmasked) frames one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(5)
        self._sock = sock
        self._data = b""
        head = self._until(lambda: b"\r\n\r\n" in self._data)
        assert head, "the server closed before answering"
        answer, _, self._data = self._data.partition(b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 101"), answer

    def _until(self, ready: Callable[[], bool]) -> bool:
        while not ready():
            try:
                chunk = self._sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self._data += chunk
        return True

    def _complete(self) -> bool:
        data = self._data
        if len(data) < 2:
            return False
        size, at = data[1] & 0x7F, 2
        if size == 126:
            if len(data) < 4:
                return False
            size, at = int.from_bytes(data[2:4], "big"), 4
        return len(data) >= at + size

    def next(self) -> tuple[int, bytes] | None:
        """The next frame (opcode, payload), or None once the server closed."""
        if not self._until(self._complete):
            return None
        data = self._data
        size, at = data[1] & 0x7F, 2
        if size == 126:
            size, at = int.from_bytes(data[2:4], "big"), 4
        self._data = data[at + size :]
        return data[0] & 0x0F, data[at : at + size]

    def close_code(self) -> int:
        """Read to the close frame; its status code."""
        while (frame := self.next()) is not None:
            if frame[0] == 0x8:
                return int.from_bytes(frame[1][:2], "big")
        raise AssertionError("no close frame before the end of the stream")


@pytest.mark.parametrize("loop", LOOPS)
def test_websocket_frames_fragments_and_bad_payloads(serve, apps: Path, loop: str) -> None:
    """Frames sent right behind the opening (held until the application accepts), a message
    in fragments with a ping between them, then a text that is not UTF-8 (1007) or an
    unmasked frame (1002): each answered as RFC 6455 says."""
    web = _start(serve, apps, loop=loop)
    marks = apps / "marks" / "ws-disconnect"
    with socket.create_connection(("127.0.0.1", web.port)) as sock:
        sock.sendall(
            _WS_OPENING
            + _frame(0x1, b"right behind")
            + _frame(0x1, b"one ", fin=False)
            + _frame(0x0, b"two ", fin=False)
            + _frame(0x9, b"ping in between")
            + _frame(0x0, b"three")
        )
        frames = _ServerFrames(sock)
        got = [frames.next() for _ in range(3)]
        assert (0x1, b"right behind") in got and (0x1, b"one two three") in got
        assert (0xA, b"ping in between") in got  # the pong
        sock.sendall(_frame(0x1, b"\xff\xfe not utf-8"))
        assert frames.close_code() == 1007
    assert _wait_for(marks).strip() == "1007"
    marks.unlink()
    with socket.create_connection(("127.0.0.1", web.port)) as sock:
        sock.sendall(_WS_OPENING)
        frames = _ServerFrames(sock)
        sock.sendall(_frame(0x1, b"unmasked", masked=False))
        assert frames.close_code() == 1002
    assert _wait_for(marks).strip() == "1002"
    web.proc.send_signal(signal.SIGTERM)
    _, err = web.proc.communicate(timeout=20)
    assert "connection closed" not in err  # the library's per-socket INFO line stays out


def test_websocket_server_stop_says_going_away(serve, apps: Path) -> None:
    web = _start(serve, apps)
    with ws_connect(f"ws://127.0.0.1:{web.port}/ws") as ws:
        ws.send("x")
        assert ws.recv() == "x"
        web.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1001
    web.proc.communicate(timeout=20)
    assert web.proc.returncode == 0


# -- in front of the application: files, auth, proxies, limits, the access log -------


def test_files_auth_and_access_log(serve, apps: Path) -> None:
    (apps / "static").mkdir()
    (apps / "static" / "hello.txt").write_text("static hello")
    web = _start(serve, apps, "--path", str(apps / "static"), "--auth", "memory:alice:secret")
    auth = ("alice", "secret")
    assert httpx.get(web.base + "/hello.txt").status_code == 401
    assert httpx.get(web.base + "/hello.txt", auth=auth).text == "static hello"
    assert httpx.get(web.base + "/other", auth=auth).text == "Hello, world!"
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"ws://127.0.0.1:{web.port}/ws")
    assert refused.value.response.status_code == 401
    _code, err = _stop(web)
    assert '"GET /hello.txt HTTP/1.1" 200 12' in err
    assert '"GET /other HTTP/1.1" 200 13' in err
    assert '"GET /ws HTTP/1.1" 401' in err


def test_proxy_headers(serve, apps: Path) -> None:
    web = _start(serve, apps, "--proxy-headers")
    headers = {"X-Forwarded-For": "203.0.113.7, 127.0.0.1", "X-Forwarded-Proto": "https"}
    scope = httpx.get(web.base + "/scope", headers=headers).json()
    assert scope["client"] == ["203.0.113.7", 0] and scope["scheme"] == "https"
    forwarded = {"Forwarded": 'for="[2001:db8::1]:4711";proto=https, for=127.0.0.1'}
    scope = httpx.get(web.base + "/scope", headers=forwarded).json()
    assert scope["client"] == ["2001:db8::1", 0] and scope["scheme"] == "https"
    # Not from a trusted proxy: the headers are ignored.
    other = _start(serve, apps, "--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8")
    scope = httpx.get(other.base + "/scope", headers=headers).json()
    assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"
    # Without --proxy-headers, never.
    plain = _start(serve, apps)
    assert httpx.get(plain.base + "/scope", headers=headers).json()["scheme"] == "http"


def test_limit_concurrency(serve, apps: Path) -> None:
    web = _start(serve, apps, "--limit-concurrency", "2")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(httpx.get, web.base + "/sleep?1.5", timeout=10) for _ in range(2)]
        time.sleep(0.5)
        refused = httpx.get(web.base + "/")
        assert refused.status_code == 503
        assert [f.result().status_code for f in slow] == [200, 200]
    assert httpx.get(web.base + "/").status_code == 200


# -- the pathsend extension ------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (folder / "small.txt").write_text("small\n")
    return folder


def _open_files(web, folder: Path) -> list[str]:
    """What the server holds open inside ``folder`` a moment after its last response
    (the client may read the last bytes just before the server closes the file)."""
    deadline = time.monotonic() + 2
    while True:
        held = []
        for fd in Path(f"/proc/{web.proc.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except FileNotFoundError:
                continue
            if target.startswith(str(folder)):
                held.append(target)
        if not held or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


@pytest.mark.parametrize("loop", LOOPS)
def test_pathsend_sends_the_file(serve, apps: Path, files: Path, loop: str) -> None:
    big = (files / "big.bin").read_bytes()
    web = _start(serve, apps, loop=loop, app="pathsendapp:app", env={"FILES": str(files)})
    with httpx.Client(base_url=web.base) as client:
        assert client.get("/extensions").text == "['http.response.pathsend']"
        # Starlette's FileResponse takes the extension: its headers, the server's bytes.
        r = client.get("/starlette?big.bin")
        assert r.status_code == 200 and r.content == big
        assert r.headers["content-length"] == str(len(big)) and "etag" in r.headers
        head = client.head("/starlette?big.bin")
        assert head.content == b"" and head.headers["content-length"] == str(len(big))
        # A raw application on the same connection: Content-Length added when missing,
        # or the file's first bytes when the application declares fewer.
        r = client.get("/raw?small.txt")
        assert r.content == b"small\n" and r.headers["content-length"] == "6"
        r = client.get(f"/raw?{files / 'big.bin'}&declare=100")
        assert r.content == big[:100] and r.headers["content-length"] == "100"
        assert client.get("/raw?big.bin").content == big
    # Pipelined, the framing exact: three responses, nothing more, nothing less.
    reply = web.raw(
        b"GET /raw?small.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 2
        + b"GET /raw?small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    responses = [r.split(b"\r\n\r\n") for r in reply.split(b"HTTP/1.1 ")[1:]]
    assert [body for _head, body in responses] == [b"small\n"] * 3
    assert all(head.startswith(b"200 OK") and b"Content-Length: 6" in head for head, _ in responses)
    # A client that leaves in the middle of a large file: the file is closed all the same.
    with socket.create_connection(("127.0.0.1", web.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /raw?big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.3)
    assert _open_files(web, files) == []
    assert httpx.get(web.base + "/raw?small.txt").text == "small\n"


@pytest.mark.parametrize("loop", LOOPS)
def test_pathsend_over_tls(tapster_proc, apps: Path, files: Path, loop: str) -> None:
    """No sendfile through TLS: the file goes out encrypted, byte for byte."""
    tls = make_tls_files(apps)
    port = free_port()
    tapster_proc.start(
        "--loop",
        loop,
        "web",
        "--asgi",
        "pathsendapp:app",
        "--listen",
        f"ssl:{port}:privateKey={tls['key']}:certKey={tls['cert']}:interface=127.0.0.1",
        cwd=apps,
        env={"FILES": str(files)},
    )
    wait_for_port(port, timeout=20)
    context = ssl.create_default_context(cafile=str(tls["ca"]))
    with httpx.Client(base_url=f"https://localhost:{port}", verify=context) as client:
        assert client.get("/raw?big.bin").content == (files / "big.bin").read_bytes()
        assert client.get("/starlette?small.txt").text == "small\n"


def test_pathsend_bad_paths(serve, apps: Path, files: Path) -> None:
    (files / "folder").mkdir()
    os.mkfifo(files / "fifo")  # nobody writes to it: opening must not wait
    web = _start(serve, apps, app="pathsendapp:app", env={"FILES": str(files)})
    with httpx.Client(base_url=web.base, timeout=5) as client:
        for path in (
            "/raw?missing.bin",
            "/raw?folder",
            "/raw?fifo",
            "/raw?small.txt&declare=100",
            "/not-a-string",
            "/before-start",
        ):
            r = client.get(path)
            assert r.status_code == 500, path
            assert b"Traceback" not in r.content and str(files).encode() not in r.content
    # After the body began, the response cannot change: the connection is cut.
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(web.base + "/after-body")
    assert httpx.get(web.base + "/raw?small.txt").text == "small\n"
    assert _open_files(web, files) == []
    code, err = _stop(web)
    assert code == 0
    failures = [line for line in err.splitlines() if "The ASGI application failed" in line]
    assert len(failures) == 7 and all("ERROR" in line for line in failures)
    for text in (
        "FileNotFoundError: [Errno 2] No such file or directory: "
        + repr(str(files / "missing.bin")),
        "IsADirectoryError: [Errno 21] Is a directory: " + repr(str(files / "folder")),
        "OSError: [Errno 22] Not a regular file: " + repr(str(files / "fifo")),
        f"the response declares 100 bytes, but {files / 'small.txt'} has 6",
        "http.response.pathsend: the path must be a string, not b",
        "RuntimeError: http.response.pathsend sent before http.response.start",
        "RuntimeError: http.response.pathsend sent after the response's body began",
    ):
        assert err.count(text) == 1, text
    assert err.count("Traceback") == 7


# -- with workers -----------------------------------------------------------------------

PID_APP = """
import os, time

MARKS = os.environ["MARKS"]


def mark(text):
    with open(os.path.join(MARKS, "lifespan"), "a") as f:
        f.write(f"{text} {os.getpid()}\\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            kind = m["type"].split(".")[1]
            mark(kind)
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    time.sleep(0.05)  # holds this worker's loop: the other takes the next connections
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""


@pytest.mark.slow
def test_asgi_with_workers(serve, apps: Path) -> None:
    """``tapster --workers 2 web --asgi myapp:app`` (docs/web.md, the README): two
    workers, one port, each worker with its own lifespan around its requests."""
    (apps / "pidapp.py").write_text(PID_APP)
    web = serve(
        "--asgi",
        "pidapp:app",
        cwd=apps,
        env={"MARKS": str(apps / "marks")},
        runner=["--workers", "2"],
    )
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: httpx.get(web.base + "/").text, range(40)))
    serving = {int(pid) for pid in answers}
    assert len(serving) == 2
    started = _wait_for(apps / "marks" / "lifespan").split("\n")
    for pid in serving:
        assert f"startup {pid}" in started
    code, err = _stop(web)
    assert code == 0, err
    marks = (apps / "marks" / "lifespan").read_text().splitlines()
    for pid in serving:
        assert f"shutdown {pid}" in marks


# -- a real framework -----------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_starlette(serve, apps: Path, loop: str) -> None:
    web = _start(serve, apps, "--root-path", "/app", loop=loop, app="starletteapp:app")
    marks = apps / "marks"
    with httpx.Client(base_url=web.base) as client:
        assert client.get("/").json() == {"db": "connected", "path": "/app/", "root_path": "/app"}
        assert client.get("/items/7").text == "item 7"
        assert client.get("/items/x").status_code == 404
        assert client.get("/stream").text == "chunk 0\nchunk 1\nchunk 2\n"
        assert client.post("/later", content=b"done later").text == "accepted"
    assert _wait_for(marks / "background") == "done later"
    with ws_connect(f"ws://127.0.0.1:{web.port}/ws") as ws:
        ws.send("shout")
        assert ws.recv() == "SHOUT"
    code, _err = _stop(web)
    assert code == 0 and (marks / "starlette-shutdown").read_text() == "bye"


def test_help_mentions_asgi_and_imports_nothing_new() -> None:
    res = run_tapster(["web", "--help"])
    assert "--asgi" in res.stdout and "--ws-max-size" in res.stdout
    for argv in (["--help"], ["web", "--help"]):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "tapster", *argv],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0
        assert "websockets" not in out.stderr and "_asgi" not in out.stderr
