"""WSGI applications under ``tapster web --wsgi``: bodies, environ, a streaming
``wsgi.input`` with backpressure, ``wsgi.file_wrapper`` and the bounded thread pool.

Every test drives a real ``tapster`` process with real clients (raw sockets,
``http.client``, ``httpx``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import struct
import textwrap
import threading
import time
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest
from support import wait_for

APP = textwrap.dedent(
    """
    import hashlib, io, json, pathlib, threading, time

    HERE = pathlib.Path(__file__).parent
    _lock = threading.Lock()
    _active = [0, 0]  # running now, most at once


    class Tracked:
        '''A file whose close() leaves a mark: PEP 3333 says the server calls it.'''

        def __init__(self, path, mark):
            self._f = open(path, "rb")
            self._mark = mark
            self.name = self._f.name

        def read(self, n=-1):
            return self._f.read(n)

        def fileno(self):
            return self._f.fileno()

        def tell(self):
            return self._f.tell()

        def seek(self, *args):
            return self._f.seek(*args)

        def close(self):
            self._f.close()
            (HERE / self._mark).write_text("closed")


    class Body:
        '''A framework's response object: an iterable with close().'''

        def __init__(self, parts):
            self.parts = parts

        def __iter__(self):
            return iter(self.parts)

        def close(self):
            (HERE / "body-closed").write_text("closed")


    def app(environ, start_response):
        path = environ["PATH_INFO"]
        query = environ["QUERY_STRING"]
        body_in = environ["wsgi.input"]
        if path.startswith("/environ"):
            text = {k: v for k, v in environ.items() if isinstance(v, str)}
            text["has_file_wrapper"] = str(callable(environ.get("wsgi.file_wrapper")))
            text["input_terminated"] = str(environ.get("wsgi.input_terminated"))
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(text).encode()]
        if path == "/hash":
            if query.startswith("wait="):
                time.sleep(float(query[5:]))
            digest, size, first = hashlib.sha256(), 0, True
            while block := body_in.read(65536):
                if first:
                    (HERE / "reading").write_text(str(len(block)))
                    first = False
                digest.update(block)
                size += len(block)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"{size} {digest.hexdigest()}".encode()]
        if path == "/lines":
            head = body_in.readline(4)
            rest = list(body_in)
            start_response("200 OK", [])
            return [json.dumps([head.decode()] + [line.decode() for line in rest]).encode()]
        if path == "/read-all":
            (HERE / "read-started").write_text("yes")
            try:
                data = body_in.read()
            except OSError as exc:
                (HERE / "read-error").write_text(type(exc).__name__)
                raise
            start_response("200 OK", [])
            return [str(len(data)).encode()]
        if path == "/ignore":
            start_response("200 OK", [("Content-Length", "7")])
            return [b"ignored"]
        if path == "/list":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"one ", b"two ", bytearray(b"three")]
        if path == "/generator":
            start_response("200 OK", [])
            return (b"part%d;" % i for i in range(50))
        if path == "/write":
            write = start_response("200 OK", [("Content-Length", "11")])
            write(b"hello ")
            return [b"world"]
        if path == "/framework":
            start_response("200 OK", [("Content-Length", "10")])
            return Body([b"hello", b"", b"world"])
        if path == "/big-list":
            start_response("200 OK", [])
            return [bytes([i]) * 65536 for i in range(20)]
        if path == "/write-then-iterate":
            write = start_response("200 OK", [("Content-Length", "9")])

            def parts():
                write(b"abc")
                yield b"def"
                yield b"ghi"

            return parts()
        if path == "/short-iterable":
            start_response("200 OK", [("Content-Length", "10")])
            return Body([b"abc"])
        if path == "/empty":
            start_response("204 No Content", [])
            return iter([])
        if path == "/long":
            start_response("200 OK", [("Content-Length", "3")])
            return [b"abcdef"]
        if path == "/short":
            start_response("200 OK", [("Content-Length", "10")])
            return [b"abc"]
        if path == "/file":
            f = Tracked(HERE / "big.bin", "file-closed")
            headers = [("Content-Type", "application/octet-stream")]
            status = "200 OK"
            if query.startswith("range="):
                first, last = (int(n) for n in query[6:].split("-"))
                f.seek(first)
                headers.append(("Content-Length", str(last - first + 1)))
                status = "206 Partial Content"
            start_response(status, headers)
            return environ["wsgi.file_wrapper"](f, 65536)
        if path == "/bytesio":
            start_response("200 OK", [])
            return environ["wsgi.file_wrapper"](io.BytesIO(b"from memory " * 1000), 4096)
        if path == "/flood":
            start_response("200 OK", [("Content-Length", str(64 * 1024 * 1024))])
            block = b"z" * (1024 * 1024)
            return (block for _ in range(64))
        if path == "/late-forever":
            time.sleep(0.5)
            start_response("200 OK", [])
            return (b"x" * 65536 for _ in iter(int, 1))
        if path == "/sleep":
            with _lock:
                _active[0] += 1
                _active[1] = max(_active)
            time.sleep(float(query or "0.4"))
            with _lock:
                _active[0] -= 1
                peak = _active[1]
            start_response("200 OK", [])
            return [str(peak).encode()]
        start_response("404 Not Found", [])
        return [b"nothing"]
    """
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "wapp.py").write_text(APP)
    (folder / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return folder


def _wait_for(path: Path) -> None:
    wait_for(path.exists, 10.0, path.name)


def _peak_rss(pid: int) -> int:
    """The most memory process ``pid`` has held (``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _read_response(reader: BinaryIO) -> tuple[bytes, bytes]:
    """One response with a Content-Length from ``reader`` (``sock.makefile("rb")``,
    which keeps what follows for the next call): (head, body)."""
    lines = []
    while (line := reader.readline()) not in (b"\r\n", b""):
        lines.append(line)
    assert lines, "closed before a response"
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    body = reader.read(length)
    assert len(body) == length, "closed before the whole body"
    return b"".join(lines), body


def test_response_bodies(serve, app_dir: Path) -> None:
    web = serve("--wsgi", "wapp:app", cwd=app_dir)
    with httpx.Client(base_url=web.base) as client:
        r = client.get("/list")  # a whole body without a length: the server counts it
        assert r.content == b"one two three" and r.headers["content-length"] == "13"
        r = client.get("/generator")
        assert r.content == b"".join(b"part%d;" % i for i in range(50))
        assert r.headers["transfer-encoding"] == "chunked"
        r = client.get("/write")
        assert r.content == b"hello world"
        r = client.get("/framework")
        assert r.content == b"helloworld" and r.headers["content-length"] == "10"
        _wait_for(app_dir / "body-closed")
        r = client.get("/big-list")  # large: sent part by part, still framed by its length
        assert r.content == b"".join(bytes([i]) * 65536 for i in range(20))
        assert r.headers["content-length"] == str(20 * 65536)
        assert client.get("/write-then-iterate").content == b"abcdefghi"
        r = client.get("/empty")
        assert r.status_code == 204 and r.content == b""
        r = client.get("/long")  # more than it declared: the extra bytes are dropped
        assert r.content == b"abc"
        r = client.head("/list")
        assert r.content == b"" and r.headers["content-length"] == "13"
        assert client.get("/list").content == b"one two three"  # same connection still fine
    # Less than it declared: the connection is cut rather than left hanging.
    for path in (b"/short", b"/short-iterable"):
        answer = web.raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nabc")


def test_environ(serve, app_dir: Path) -> None:
    web = serve("--wsgi", "wapp:app", cwd=app_dir)
    raw = web.raw(
        b"GET /environ?x=%41 HTTP/1.1\r\nHost: example.org:8080\r\nX-Twice: a\r\n"
        b"X-Twice: b\r\nX_Sneaky: no\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    )
    environ = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert environ["REQUEST_METHOD"] == "GET" and environ["QUERY_STRING"] == "x=%41"
    assert environ["SERVER_NAME"] == "example.org" and environ["SERVER_PORT"] == "8080"
    assert environ["HTTP_X_TWICE"] == "a,b" and "HTTP_X_SNEAKY" not in environ
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and environ["SCRIPT_NAME"] == ""
    assert environ["wsgi.url_scheme"] == "http" and environ["has_file_wrapper"] == "True"
    assert environ["input_terminated"] == "True"
    raw = web.raw(b"GET /environ/%E2%82%AC/a%2Fb HTTP/1.0\r\n\r\n")
    environ = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert environ["PATH_INFO"] == "/environ/\u00e2\u0082\u00ac/a/b"  # bytes as latin-1, decoded %
    assert environ["SERVER_NAME"] == "localhost" and environ["SERVER_PORT"] == "80"
    assert "HTTP_HOST" not in environ and "CONTENT_LENGTH" not in environ


def test_input_streams_while_the_body_arrives(serve, app_dir: Path, loop: str) -> None:
    """The application reads the first bytes before the client has sent the rest."""
    web = serve("--wsgi", "wapp:app", cwd=app_dir, runner=["--loop", loop])
    body = os.urandom(4 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        reader = s.makefile("rb")
        s.sendall(b"POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        s.sendall(body[:100_000])
        _wait_for(app_dir / "reading")
        for start in range(100_000, len(body), 1024 * 1024):
            time.sleep(0.05)  # a slow client
            s.sendall(body[start : start + 1024 * 1024])
        _, answer = _read_response(reader)
        assert answer == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        # Chunked, read by lines (readline with a limit, then iteration), same connection.
        s.sendall(
            b"POST /lines HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"7\r\nfirst l\r\n"
            b"9\r\nine\nsecon\r\n"
            b"7\r\nd\nthird\r\n0\r\n\r\n"
        )
        _, answer = _read_response(reader)
        assert json.loads(answer) == ["firs", "t line\n", "second\n", "third"]


@pytest.mark.slow
def test_input_backpressure_bounds_memory(serve, app_dir: Path, loop: str) -> None:
    """An application that does not read yet holds the client back: the body never
    piles up in the server's memory."""
    web = serve(
        "--wsgi",
        "wapp:app",
        "--max-body",
        str(128 * 1024 * 1024),
        cwd=app_dir,
        runner=["--loop", loop],
    )
    web.get("/list")  # warm: the first request's imports do not count
    before = _peak_rss(web.proc.pid)
    size = 64 * 1024 * 1024
    block = os.urandom(64 * 1024)
    digest = hashlib.sha256(block * (size // len(block))).hexdigest()
    sent = [0]
    with socket.create_connection(("127.0.0.1", web.port), timeout=20) as s:
        reader = s.makefile("rb")
        s.sendall(b"POST /hash?wait=1.5 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)

        def send() -> None:
            for _ in range(size // len(block)):
                s.sendall(block)
                sent[0] += len(block)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(1.0)  # the application sleeps 1.5 s before its first read
        held_back_at = sent[0]
        sender.join(30)
        _, answer = _read_response(reader)
    assert answer == f"{size} {digest}".encode()
    assert held_back_at < 24 * 1024 * 1024, f"the client sent {held_back_at} bytes unread"
    grew = _peak_rss(web.proc.pid) - before
    assert grew < 24 * 1024 * 1024, f"the server grew by {grew} bytes for a {size}-byte body"


@pytest.mark.slow
def test_output_backpressure_bounds_memory(serve, app_dir: Path, loop: str) -> None:
    """An application that produces faster than its client reads is held back: the
    response never piles up in the server's memory."""
    web = serve("--wsgi", "wapp:app", cwd=app_dir, runner=["--loop", loop])
    web.get("/list")  # warm: the first request's imports do not count
    before = _peak_rss(web.proc.pid)
    size = 64 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", web.port), timeout=20) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        s.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(1.5)  # not reading: the application runs ahead, if it may
        grew_while_stalled = _peak_rss(web.proc.pid) - before
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        received = len(data.partition(b"\r\n\r\n")[2])
        while received < size:
            chunk = s.recv(1024 * 1024)
            assert chunk, f"closed after {received} bytes of the body"
            received += len(chunk)
    assert received == size
    assert grew_while_stalled < 24 * 1024 * 1024, f"grew by {grew_while_stalled} bytes"


def test_input_limits_and_lost_clients(serve, app_dir: Path) -> None:
    web = serve("--wsgi", "wapp:app", "--max-body", "100000", "--threads", "1", cwd=app_dir)
    # A declared length over --max-body: refused before the application runs.
    answer = web.raw(b"POST /read-all HTTP/1.1\r\nHost: x\r\nContent-Length: 100001\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ")
    # A chunked body that grows past it: cut off, and the application's read says so.
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(b"POST /read-all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        _wait_for(app_dir / "read-started")  # the application is reading
        with contextlib.suppress(OSError):
            for _ in range(30):
                s.sendall(b"1000\r\n" + b"x" * 0x1000 + b"\r\n")
        _wait_for(app_dir / "read-error")
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(100) == b""  # cut off (no 413: the application had the request)
        assert (app_dir / "read-error").read_text() == "ConnectionResetError"
    (app_dir / "read-error").unlink()
    # A client that leaves mid-body: the read fails, and the only thread is free again.
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(b"POST /read-all HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\nabc")
        time.sleep(0.2)
    _wait_for(app_dir / "read-error")
    assert web.get("/list")[2] == b"one two three"


def test_unread_body_is_skipped(serve, app_dir: Path) -> None:
    """A response that comes before the body is read leaves the connection usable."""
    web = serve("--wsgi", "wapp:app", cwd=app_dir)
    big = b"y" * (2 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        reader = s.makefile("rb")
        s.sendall(b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big))
        _, answer = _read_response(reader)
        assert answer == b"ignored"
        s.sendall(big)
        # Pipelined: two requests with bodies in one send.
        s.sendall(
            b"POST /hash HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /read-all HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        )
        _, first = _read_response(reader)
        _, second = _read_response(reader)
    assert first == f"3 {hashlib.sha256(b'abc').hexdigest()}".encode()
    assert second == b"5"


def test_file_wrapper(serve, app_dir: Path, loop: str) -> None:
    web = serve("--wsgi", "wapp:app", cwd=app_dir, runner=["--loop", loop])
    data = (app_dir / "big.bin").read_bytes()
    closed = app_dir / "file-closed"
    with httpx.Client(base_url=web.base, timeout=10) as client:
        r = client.get("/file")
        assert r.status_code == 200 and r.content == data
        assert r.headers["content-length"] == str(len(data))
        _wait_for(closed)
        closed.unlink()
        r = client.get("/file?range=1000-70999")  # the application seeks and declares
        assert r.status_code == 206 and r.content == data[1000:71000]
        _wait_for(closed)
        closed.unlink()
        r = client.head("/file")
        assert r.content == b"" and r.headers["content-length"] == str(len(data))
        _wait_for(closed)
        r = client.get("/bytesio")  # no descriptor: iterated in blocks
        assert r.content == b"from memory " * 1000
        assert client.get("/list").content == b"one two three"


def test_file_wrapper_over_tls(serve, app_dir: Path) -> None:
    """Through TLS the file goes out in blocks, not with sendfile: the same bytes; and
    the environ says https."""
    from support import free_port, make_tls_files

    tls = make_tls_files(app_dir.parent)
    port = free_port()
    tls_listen = f"ssl:{port}:interface=127.0.0.1:cert={tls['cert']}:key={tls['key']}"
    # Both listeners bind before the server starts: the plain one answering means both do.
    serve("--wsgi", "wapp:app", "--listen", tls_listen, cwd=app_dir)
    context = ssl.create_default_context(cafile=str(tls["ca"]))
    with httpx.Client(base_url=f"https://localhost:{port}", verify=context, timeout=10) as c:
        r = c.get("/file")
        environ = c.get("/environ").json()
    assert r.content == (app_dir / "big.bin").read_bytes()
    _wait_for(app_dir / "file-closed")
    assert environ["wsgi.url_scheme"] == "https"


def test_pool_is_bounded_and_blocking_calls_spread(serve, app_dir: Path) -> None:
    """At most --threads calls run at once, and calls that block run side by side."""
    web = serve("--wsgi", "wapp:app", "--threads", "3", cwd=app_dir)
    web.get("/list")

    def run(count: int) -> tuple[float, list[int]]:
        peaks: list[int] = []

        def one() -> None:
            peaks.append(int(web.get("/sleep?0.4")[2]))

        threads = [threading.Thread(target=one) for _ in range(count)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        return time.monotonic() - start, peaks

    took, peaks = run(3)
    assert len(peaks) == 3 and took < 1.15, f"3 blocking calls on 3 threads took {took:.2f} s"
    took, peaks = run(7)
    assert len(peaks) == 7 and max(peaks) == 3, peaks
    assert 1.1 < took < 2.5, f"7 calls of 0.4 s on 3 threads took {took:.2f} s"


def test_worker_freed_when_client_leaves_during_login(serve, app_dir: Path) -> None:
    """With --auth the first request waits for its login and then for its call; a client
    that leaves meanwhile must not leave an endless body holding the only thread."""
    web = serve("--wsgi", "wapp:app", "--auth", "memory:u:p", "--threads", "1", cwd=app_dir)
    token = base64.b64encode(b"u:p")
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(b"GET /late-forever HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + token)
        s.sendall(b"\r\n\r\n")
        time.sleep(0.2)
        # Reset, not a polite close: the server sees the connection lost at once.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(1.0)
    status, _, body = web.get("/list", {"Authorization": "Basic " + token.decode()})
    assert status == 200 and body == b"one two three"
