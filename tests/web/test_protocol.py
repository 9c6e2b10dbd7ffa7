"""Protocol details over real sockets: both event loops, access log, HEAD, Expect, Upgrade."""

from __future__ import annotations

import gzip
import os
import re
import socket
from pathlib import Path

import pytest


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_large_files_on_each_loop(serve, tmp_path: Path, loop: str) -> None:
    """Big files take the sendfile path (asyncio) or its fallback (uvloop)."""
    root = tmp_path / "r"
    root.mkdir()
    data = os.urandom(5 * 1024 * 1024 + 3)
    (root / "big.bin").write_bytes(data)
    text = b"".join(b"line %d of a large text file\n" % i for i in range(120_000))
    (root / "big.txt").write_bytes(text)
    web = serve("--path", str(root), runner=["--loop", loop])
    status, headers, body = web.get("/big.bin")
    assert status == 200 and body == data
    status, headers, body = web.get("/big.bin", {"Range": "bytes=4000000-4000009,-4"})
    assert status == 206 and data[4000000:4000010] in body and body.count(data[-4:]) >= 1
    status, headers, body = web.get("/big.bin", method="HEAD")
    assert body == b"" and headers["Content-Length"] == str(len(data))
    status, headers, body = web.get("/big.txt", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == text
    # Keep-alive continues after a sendfile response.
    c = web.conn()
    for _ in range(3):
        c.request("GET", "/big.bin")
        assert c.getresponse().read() == data
    c.close()


def test_access_log_lines(serve, site: Path) -> None:
    web = serve("--path", str(site))
    web.get("/hello.txt", {"User-Agent": "probe/1.0", "Referer": "http://ref/"})
    web.get("/missing", {"User-Agent": 'evil" "agent'})
    web.proc.terminate()
    out, err = web.proc.communicate(timeout=15)
    log = out + err
    assert re.search(
        r"127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "
        r'"GET /hello\.txt HTTP/1\.1" 200 1200 "http://ref/" "probe/1\.0"',
        log,
    ), log
    assert '"GET /missing HTTP/1.1" 404' in log
    assert '"evil\\" \\"agent"' in log  # quotes in logged values are escaped


def test_no_access_log(serve, site: Path) -> None:
    web = serve("--path", str(site), "--no-access-log")
    web.get("/hello.txt")
    web.proc.terminate()
    out, err = web.proc.communicate(timeout=15)
    assert "GET /hello.txt" not in out + err


def test_head_of_errors_has_no_body(serve, site: Path) -> None:
    web = serve("--path", str(site))
    raw = web.raw(b"HEAD /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404") and b"Content-Length: " in head and body == b""


def test_expect_continue(serve, tmp_path: Path) -> None:
    (tmp_path / "echoapp.py").write_text(
        "def app(environ, start_response):\n"
        "    body = environ['wsgi.input'].read()\n"
        "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
        "    return [body]\n"
    )
    web = serve("--wsgi", "echoapp:app", cwd=tmp_path)
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"abcde")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\nabcde")


def test_upgrade_is_answered_then_closed(serve, site: Path) -> None:
    web = serve("--path", str(site))
    raw = web.raw(
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x05hello"
    )
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.count(b"HTTP/1.1") == 1
    assert b"Connection: close" in raw


def test_unix_socket_listener(tapster_proc, site: Path, tmp_path: Path) -> None:
    import http.client
    import time

    path = tmp_path / "web.sock"
    proc = tapster_proc.start("web", "--listen", f"unix:{path}", "--path", str(site))
    deadline = time.monotonic() + 20
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(path))

    c = UnixConnection("localhost", timeout=10)
    c.request("GET", "/data.json")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b'{"x": 1}'
    c.close()


def test_access_log_file(serve, site: Path, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    web = serve("--path", str(site), "--access-log-file", str(log))
    for _ in range(3):
        web.get("/hello.txt", {"User-Agent": "filetest"})
    # Batched: written within the flush interval.
    import time

    deadline = time.monotonic() + 5
    while log.read_text().count("filetest") < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Rotation: the file is renamed, the next batch goes to a new file.
    log.rename(tmp_path / "access.log.1")
    web.get("/data.json", {"User-Agent": "after-rotate"})
    deadline = time.monotonic() + 5
    while not (log.exists() and "after-rotate" in log.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert oct(log.stat().st_mode & 0o777) == "0o640"
    web.proc.terminate()
    out, err = web.proc.communicate(timeout=15)
    assert "filetest" not in out + err


def test_access_log_file_keeps_every_line_through_a_stop(serve, site: Path, tmp_path: Path) -> None:
    """Lines still with the writer thread when SIGTERM comes are written before the exit."""
    import http.client

    log = tmp_path / "access.log"
    web = serve("--path", str(site), "--access-log-file", str(log))
    c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    for _ in range(300):
        c.request("GET", "/hello.txt", headers={"User-Agent": "burst"})
        c.getresponse().read()
    c.close()
    web.proc.terminate()  # at once: most lines are still waiting for their batch
    web.proc.communicate(timeout=15)
    assert web.proc.returncode == 0
    assert log.read_text().count('"burst"') == 300


def test_half_closed_client_still_gets_answers(serve, site: Path) -> None:
    web = serve("--path", str(site))
    # A file not read yet (its first read runs in a thread), then a cached one.
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(
            b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.endswith((site / "style.css").read_bytes())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_and_two_listeners(tapster_proc, site: Path, tmp_path: Path, loop: str) -> None:
    """HTTPS (no sendfile through TLS: the fallback path) next to plain HTTP."""
    import http.client
    import ssl
    import time

    from support import free_port, make_tls_files, wait_for_port

    tls = make_tls_files(tmp_path)
    plain_port, tls_port = free_port(), free_port()
    proc = tapster_proc.start(
        "--loop",
        loop,
        "web",
        "--listen",
        f"tcp:{plain_port}:interface=127.0.0.1",
        "--listen",
        f"ssl:{tls_port}:interface=127.0.0.1:cert={tls['cert']}:key={tls['key']}",
        "--path",
        str(site),
    )
    deadline = time.monotonic() + 20
    for port in (plain_port, tls_port):
        while True:
            try:
                wait_for_port(port, timeout=0.2)
                break
            except TimeoutError:
                assert proc.poll() is None and time.monotonic() < deadline
    context = ssl.create_default_context(cafile=str(tls["ca"]))
    c = http.client.HTTPSConnection("localhost", tls_port, context=context, timeout=10)
    c.request("GET", "/big.bin")
    r = c.getresponse()
    assert r.status == 200 and r.read() == (site / "big.bin").read_bytes()
    c.request("GET", "/hello.txt", headers={"Range": "bytes=0-4"})
    r = c.getresponse()
    assert r.status == 206 and r.read() == b"hello"
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", plain_port, timeout=10)
    c.request("GET", "/data.json")
    assert c.getresponse().read() == b'{"x": 1}'
    c.close()


def test_ipv6_listener(tapster_proc, site: Path) -> None:
    import http.client
    import time

    from support import free_port, wait_for_port

    try:
        port = free_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    proc = tapster_proc.start(
        "web", "--listen", f"tcp6:{port}:interface=\\:\\:1", "--path", str(site)
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            wait_for_port(port, host="::1", timeout=0.2)
            break
        except TimeoutError:
            assert proc.poll() is None and time.monotonic() < deadline
    c = http.client.HTTPConnection("::1", port, timeout=10)
    c.request("GET", "/data.json", headers={"User-Agent": "v6"})
    assert c.getresponse().read() == b'{"x": 1}'
    c.close()
    proc.terminate()
    out, err = proc.communicate(timeout=15)
    assert "::1 - - [" in out + err
