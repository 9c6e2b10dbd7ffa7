"""Path safety, limits, malformed requests and slow clients, over raw sockets."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from support import tapster_cmd, tapster_env

SECRET = b"TOPSECRET-do-not-serve"


@pytest.fixture
def jail(tmp_path: Path) -> Path:
    """A served folder next to a secret, with symlinks that lead out of it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_text("inner")
    os.symlink(outside / "secret.txt", root / "escape.txt")
    os.symlink(outside, root / "escdir")
    os.symlink(root / "hello.txt", root / "inside-link.txt")
    return root


# Each attack is a raw request target; none may reveal the secret.
ATTACKS = [
    b"/../secret.txt",
    b"/../outside/secret.txt",
    b"/..%2fsecret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E/secret.txt",
    b"/%2e%2e%2fsecret.txt",
    b"/.%2e/secret.txt",
    b"/%2e./secret.txt",
    b"/%252e%252e/secret.txt",
    b"/sub/../../secret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt",
    b"/./../secret.txt",
    b"//../secret.txt",
    b"/..%5csecret.txt",
    b"/..\\secret.txt",
    b"/%5c..%5csecret.txt",
    b"/%2e%2e%5c%2e%2e%5csecret.txt",
    b"/escape.txt",
    b"/escdir/secret.txt",
    b"/escdir/",
    b"/hello.txt%00.png",
    b"/%00",
    b"/escape.txt%00",
    b"/..%c0%afsecret.txt",
    b"/%c0%ae%c0%ae/secret.txt",
    b"/..;/secret.txt",
    b"/....//secret.txt",
    b"/hello.txt/../../secret.txt",
    b"/%u002e%u002e/secret.txt",
    b"http://localhost/../secret.txt",
    b"http://localhost/%2e%2e/secret.txt",
    b"../secret.txt",
    b"/sub/..%2f..%2fsecret.txt",
]


def _request(port: int, target: bytes) -> bytes:
    req = b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_traversal_attacks(serve, jail: Path) -> None:
    assert len(ATTACKS) >= 20
    web = serve("--path", str(jail))
    for target in ATTACKS:
        raw = _request(web.port, target)
        status = raw.split(b" ", 2)[1]
        assert status in (b"400", b"404"), (target, raw[:200])
        assert SECRET not in raw, target
        assert str(jail.parent).encode() not in raw, target
        assert b"Traceback" not in raw, target
    # The server is still fine, and symlinks inside the root work.
    assert web.get("/hello.txt")[2] == b"hello"
    assert web.get("/inside-link.txt")[2] == b"hello"
    # The listing hides links that lead out.
    names = [e["name"] for e in _json(web.get("/", {"Accept": "application/json"})[2])]
    assert "escape.txt" not in names and "inside-link.txt" in names


def _json(body: bytes) -> list[dict]:
    import json

    return json.loads(body)["entries"]


def test_follow_symlinks(serve, jail: Path) -> None:
    web = serve("--path", str(jail), "--follow-symlinks")
    assert web.get("/escape.txt")[2] == SECRET
    assert web.get("/escdir/secret.txt")[2] == SECRET
    # Still no way up with dot segments.
    assert SECRET not in _request(web.port, b"/../secret.txt")


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def test_malformed_requests_get_400(serve, jail: Path) -> None:
    web = serve("--path", str(jail))
    bad = [
        b"HELLO\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
        # Request smuggling shapes: both framings, or chunked not last.
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n0\r\n\r\nGET /hello.txt HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
    ]
    for data in bad:
        raw = web.raw(data)
        assert raw.startswith(b"HTTP/1.1 400 "), (data, raw[:100])
        assert b"Connection: close" in raw
        assert b"Traceback" not in raw
    assert web.get("/hello.txt")[0] == 200


def test_limits(serve, jail: Path) -> None:
    web = serve("--path", str(jail))
    raw = web.raw(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(raw) == 414
    raw = web.raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n")
    assert _status(raw) == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    raw = web.raw(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert _status(raw) == 431
    # A header that never ends is cut off too, as soon as it passes the bound
    # (request line plus header section, 40 KiB by default): httptools reports
    # no header until its end, so only the protocol's own count can stop it.
    # The answer must be that 431, well before the 30 s request timeout.
    assert _endless_header(web.port) == 431
    assert web.get("/hello.txt")[0] == 200


def _endless_header(port: int) -> int:
    """Send one header value without end, 8 KiB at a time, until the server
    answers (or 1 MiB went unanswered); the status it answered with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
        for _ in range(128):
            try:
                s.sendall(b"x" * 8192)
            except OSError:  # cut off while sending: the answer is already here
                break
            if select.select([s], [], [], 0.02)[0]:
                break
        try:
            got = s.recv(65536)
        except TimeoutError:
            raise AssertionError("1 MiB of one header and no answer in 10 s") from None
    assert got, "the connection was closed without an answer"
    return _status(got)


def test_body_limit(serve, jail: Path) -> None:
    web = serve("--path", str(jail), "--max-body", "1K")
    raw = web.raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
    assert _status(raw) == 413
    chunk = b"400\r\n" + b"y" * 1024 + b"\r\n"
    raw = web.raw(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 3
        + b"0\r\n\r\n"
    )
    assert _status(raw) == 413


def test_slow_request_times_out(serve, jail: Path) -> None:
    web = serve("--path", str(jail), "--request-timeout", "1")
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost")
        start = time.monotonic()
        raw = s.recv(65536)
        took = time.monotonic() - start
    assert _status(raw) == 408
    assert 0.5 < took < 6
    # A connection that sends nothing at all is closed too.
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        assert s.recv(100) == b""


def test_idle_keep_alive_closes(serve, jail: Path) -> None:
    web = serve("--path", str(jail), "--keep-alive-timeout", "1")
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        first = s.recv(65536)
        assert _status(first) == 200
        start = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - start < 6


def test_slowloris_and_slow_reader_do_not_block_others(serve, tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    (root / "small.txt").write_text("small")
    web = serve("--path", str(root))
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", web.port), timeout=10)
            s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        reader = socket.create_connection(("127.0.0.1", web.port), timeout=10)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        socks.append(reader)
        for _ in range(5):
            reader.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        for _ in range(20):
            assert web.get("/small.txt")[2] == b"small"
        assert time.monotonic() - start < 15  # each takes milliseconds; generous for busy CI
    finally:
        for s in socks:
            s.close()


def test_unreadable_files_as_nobody(tapster_proc) -> None:
    """Dropped to ``nobody`` (``--uid``, after binding, as a real deployment runs):
    files it may not read are errors, never a cut connection."""
    import gzip
    import http.client
    import pwd
    import shutil
    import tempfile

    from support import free_port, wait_for_port

    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' here")
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process as nobody")
    root = Path(tempfile.mkdtemp(prefix="tapster-web-nobody-"))
    try:
        root.chmod(0o755)
        (root / "open.txt").write_text("open")
        (root / "open.txt").chmod(0o644)
        words = b"tapster serves this text compressed\n" * 100
        (root / "words.txt").write_bytes(words)
        (root / "words.txt").chmod(0o644)
        for name, size in (("small.bin", 10), ("big.bin", 3 * 1024 * 1024)):
            (root / name).write_bytes(b"s" * size)
            (root / name).chmod(0o600)
        port = free_port()
        proc = tapster_proc.start(
            "--uid",
            "nobody",
            "web",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
            "--path",
            str(root),
            "--no-access-log",
            cwd=str(root),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                wait_for_port(port, timeout=0.2)
                break
            except TimeoutError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for path in ("/small.bin", "/big.bin"):
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            assert r.status in (403, 404) and b"sss" not in body, path
        c.request("GET", "/open.txt")
        assert c.getresponse().read() == b"open"  # same connection, still fine
        # What the server imports on first use (a listing's html and json, gzip)
        # was imported before the switch: nobody cannot read this interpreter's
        # library when it lives under /root.
        c.request("GET", "/", headers={"Accept": "application/json"})
        r = c.getresponse()
        assert r.status == 200 and b'"open.txt"' in r.read()
        c.request("GET", "/", headers={"Accept-Encoding": "gzip"})
        r = c.getresponse()
        assert r.status == 200 and b"open.txt" in r.read()
        c.request("GET", "/words.txt", headers={"Accept-Encoding": "gzip"})
        r = c.getresponse()
        assert r.getheader("Content-Encoding") == "gzip", r.getheaders()
        assert gzip.decompress(r.read()) == words
        c.close()
    finally:
        shutil.rmtree(root)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_client_that_stops_reading_is_cut_off(serve, tmp_path: Path, loop: str) -> None:
    """asyncio sends with sendfile, uvloop with writes: both paths give up on a stalled client."""
    root = tmp_path / "r"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(16 * 1024 * 1024))
    web = serve("--path", str(root), "--send-timeout", "1", runner=["--loop", loop])
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(3.5)  # read nothing: the server's buffers fill, then it gives up
        got = 0
        try:
            while chunk := s.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
    assert got < 16 * 1024 * 1024
    assert web.get("/big.bin", method="HEAD")[0] == 200  # the server itself is fine


def _start_in_private_network(jail: Path, *args: str) -> tuple[str, str]:
    """Run ``tapster web --path JAIL ARGS`` in a network namespace of its own (only
    loopback, so port 8080 is free whatever else runs here); return the start-up
    log and the process's listening sockets from ``/proc/PID/net/tcp``."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
        pytest.skip("needs root, unshare and ip for a private network namespace")
    script = 'ip link set lo up && exec "$@"'
    argv = [
        "unshare",
        "-n",
        "sh",
        "-c",
        script,
        "sh",
        *tapster_cmd("web", "--path", str(jail), *args),
    ]
    proc = subprocess.Popen(argv, env=tapster_env(), stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        log = ""
        deadline = time.monotonic() + 20
        while "ready" not in log:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 65536) if ready else b""
            assert chunk, f"tapster web did not start: {log}"
            log += chunk.decode()
        with open(f"/proc/{proc.pid}/net/tcp") as table:
            listening = [row.split()[1] for row in table if row.split()[3] == "0A"]
        return log, " ".join(listening)
    finally:
        proc.terminate()
        proc.wait(10)


def test_listens_on_loopback_unless_told_otherwise(jail: Path) -> None:
    """``tapster web --path .`` (the README's first command) does not publish the folder."""
    log, sockets = _start_in_private_network(jail)
    assert sockets == "0100007F:1F90", sockets  # 127.0.0.1:8080, and nothing else
    assert "listening on tcp:127.0.0.1:8080" in log, log
    assert (
        "serving http://127.0.0.1:8080/ (loopback only; --listen tcp:8080 for every interface)"
        in log
    ), log
    log, sockets = _start_in_private_network(jail, "--listen", "tcp:8080")
    assert sockets == "00000000:1F90", sockets  # 0.0.0.0:8080, as asked
    assert "serving http://0.0.0.0:8080/\n" in log, log
