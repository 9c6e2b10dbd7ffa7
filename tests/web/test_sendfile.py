"""How file bodies go out: sendfile on plain connections, memory for small files and TLS.

Every test runs a real ``tapster web`` on each loop and checks the bytes a real
client receives (curl, httpx, raw sockets), around the size at which bodies
switch from memory to sendfile (``SENDFILE_FROM``), the memory cache's limit
(``SMALL_FILE``) and well beyond both.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port, make_tls_files, wait_for_port

from tapster.web._static import SENDFILE_FROM, SMALL_FILE

#: name -> size: empty, tiny, around both thresholds, and large.
SIZES = {
    "empty.bin": 0,
    "one.bin": 1,
    "1k.bin": 1024,
    "below.bin": SENDFILE_FROM - 1,
    "at.bin": SENDFILE_FROM,
    "above.bin": SENDFILE_FROM + 1,
    "cached.bin": SMALL_FILE,
    "uncached.bin": SMALL_FILE + 1,
    "large.bin": 20 * 1024 * 1024,
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The bytes of every file in ``SIZES`` (random: a misplaced byte shows)."""
    return {name: os.urandom(size) for name, size in SIZES.items()}


@pytest.fixture
def root(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _read_response(sock: socket.socket, pending: bytearray) -> tuple[bytes, dict[str, str], bytes]:
    """One response from a keep-alive connection: status line, headers, body."""
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(1 << 20)
        assert chunk, f"connection closed before a head: {bytes(pending[:200])!r}"
        pending += chunk
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    del pending[:]
    pending += rest
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(pending) < length:
        chunk = sock.recv(1 << 20)
        assert chunk, f"connection closed after {len(pending)} of {length} body bytes"
        pending += chunk
    body = bytes(pending[:length])
    del pending[:length]
    return lines[0].encode(), headers, body


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _settled_fds(pid: int) -> int:
    """The server's descriptor count once the connections of earlier requests are gone."""
    counts = []
    for _ in range(10):
        counts.append(_fds(pid))
        time.sleep(0.05)
    return min(counts)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_every_size_exact_with_curl(serve, root: Path, files: dict[str, bytes], loop: str) -> None:
    """curl fetches every size on one keep-alive connection; each file arrives exact."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    web = serve("--path", str(root), "--no-access-log", runner=["--loop", loop])
    out = root.parent / "out"
    out.mkdir()
    argv = [curl, "--silent", "--show-error", "--fail", "--max-time", "60"]
    for name in files:
        argv += [f"{web.base}/{name}", "--output", str(out / name)]
    # Twice: the first round reads files into the cache, the second answers from it.
    for _ in range(2):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, result.stderr
        for name, data in files.items():
            assert (out / name).read_bytes() == data, name


def test_keep_alive_mixed_sizes_and_pipelining(
    serve, root: Path, files: dict[str, bytes], loop: str
) -> None:
    """Mixed sizes one after another, then all of them pipelined in one write:
    every body exact and in order (a sendfile never overtakes a buffered head)."""
    web = serve("--path", str(root), "--no-access-log", runner=["--loop", loop])
    order = ["above.bin", "1k.bin", "large.bin", "empty.bin", "at.bin", "below.bin"]
    order += ["uncached.bin", "one.bin", "cached.bin", "above.bin", "large.bin", "1k.bin"]
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as s:
        pending = bytearray()
        for name in order:
            s.sendall(f"GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status, _, body = _read_response(s, pending)
            assert status == b"HTTP/1.1 200 OK" and body == files[name], name
        s.sendall(b"".join(f"GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in order))
        for name in order:
            status, headers, body = _read_response(s, pending)
            assert status == b"HTTP/1.1 200 OK", name
            assert int(headers["content-length"]) == len(files[name]), name
            assert body == files[name], name
        assert not pending


def test_file_after_a_buffered_response(
    serve, root: Path, files: dict[str, bytes], loop: str
) -> None:
    """A file asked for behind a large response still in the transport's buffer (a
    compressed text, written from memory) waits for that buffer to empty before its
    sendfile: the bytes come in order, to a client that reads slowly."""
    import base64
    import gzip

    text = base64.encodebytes(os.urandom(3 * 1024 * 1024))  # compresses to about 3/4
    (root / "noise.css").write_bytes(text)
    web = serve("--path", str(root), "--no-access-log", runner=["--loop", loop])
    assert web.get("/noise.css", {"Accept-Encoding": "gzip"})[0] == 200  # compressed once
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s.settimeout(30)
        s.connect(("127.0.0.1", web.port))
        s.sendall(
            b"GET /noise.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
            b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /above.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        got = bytearray()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            got += s.recv(8192)
            time.sleep(0.002)
        _, headers, body = _read_response(s, got)
        assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == text
        assert _read_response(s, got)[2] == files["large.bin"]
        assert _read_response(s, got)[2] == files["above.bin"]


def test_head_then_get_on_one_connection(
    serve, root: Path, files: dict[str, bytes], loop: str
) -> None:
    """HEAD of a sendfile-sized file sends no body: the next response follows at once."""
    web = serve("--path", str(root), "--no-access-log", runner=["--loop", loop])
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as s:
        pending = bytearray()
        for name in ("large.bin", "above.bin", "cached.bin"):
            s.sendall(f"HEAD /{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            while pending.count(b"\r\n\r\n") < 1:
                pending += s.recv(65536)
            head, _, rest = bytes(pending).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert f"Content-Length: {len(files[name])}".encode() in head
            pending[:] = rest
            status, _, body = _read_response(s, pending)
            assert status == b"HTTP/1.1 200 OK" and body == files["1k.bin"]


def test_ranges_go_out_exact(serve, root: Path, files: dict[str, bytes], loop: str) -> None:
    """Single ranges (small and large, at both ends) and a multipart range mixing both."""
    web = serve("--path", str(root), "--no-access-log", runner=["--loop", loop])
    with httpx.Client(base_url=web.base, timeout=30) as client:
        for name in ("above.bin", "cached.bin", "uncached.bin", "large.bin"):
            data = files[name]
            size = len(data)
            for first, last in (
                (0, 9),
                (1, SENDFILE_FROM),  # a range big enough for sendfile, off by one from the start
                (max(0, size - SENDFILE_FROM - 5), size - 1),
                (size // 2, size // 2),
            ):
                r = client.get(f"/{name}", headers={"Range": f"bytes={first}-{last}"})
                assert r.status_code == 206, (name, first, last)
                assert r.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
                assert r.content == data[first : last + 1], (name, first, last)
            r = client.get(f"/{name}", headers={"Range": f"bytes=0-3,10-{SENDFILE_FROM + 20},-7"})
            assert r.status_code == 206
            body = r.content
            for part in (data[0:4], data[10 : SENDFILE_FROM + 21], data[-7:]):
                assert part in body
            assert body.index(data[0:4]) < body.index(data[10 : SENDFILE_FROM + 21])
            assert int(r.headers["Content-Length"]) == len(body)


@pytest.mark.slow
def test_slow_reader_gets_every_byte_in_bounded_memory(
    serve, root: Path, files: dict[str, bytes], loop: str
) -> None:
    """A client that reads slowly fills the socket again and again: the server waits for
    it each time, sends every byte in order, grows no buffer, and leaks no descriptor."""
    web = serve("--path", str(root), "--no-access-log", runner=["--loop", loop])
    pid = web.proc.pid
    assert web.get("/1k.bin")[0] == 200
    fds, peak = _settled_fds(pid), _peak_rss_kib(pid)
    data = files["large.bin"]
    got = bytearray()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s.settimeout(30)
        s.connect(("127.0.0.1", web.port))
        s.sendall(
            b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /above.bin HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # slowly at first: the server waits on a full socket
            got += s.recv(16384)
            time.sleep(0.005)
        pending = got
        status, _, body = _read_response(s, pending)
        assert status == b"HTTP/1.1 200 OK" and body == data
        status, _, body = _read_response(s, pending)
        assert status == b"HTTP/1.1 200 OK" and body == files["above.bin"]
    # Nothing in the server held the 20 MiB (it would raise the high-water mark by that).
    assert _peak_rss_kib(pid) - peak < 8 * 1024
    assert web.get("/1k.bin")[2] == files["1k.bin"]
    deadline = time.monotonic() + 5
    while _fds(pid) > fds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fds(pid) == fds
    # The loop is idle again: nothing still watches the socket that went away.
    before = _cpu_seconds(pid)
    time.sleep(1.0)
    assert _cpu_seconds(pid) - before < 0.2


@pytest.mark.slow
def test_multipart_ranges_to_a_slow_reader(
    serve, root: Path, files: dict[str, bytes], loop: str
) -> None:
    """Part heads written by the transport and parts sent with sendfile, to a client
    that keeps the socket full: a part is sent only once the head before it is out."""
    web = serve("--path", str(root), "--no-access-log", runner=["--loop", loop])
    data = files["large.bin"]
    spans = ((0, 3_000_000), (5_000_000, 9_000_000), (len(data) - 2_000_000, len(data) - 1))
    ranges = ",".join(f"{first}-{last}" for first, last in spans)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s.settimeout(30)
        s.connect(("127.0.0.1", web.port))
        s.sendall(f"GET /large.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={ranges}\r\n\r\n".encode())
        got = bytearray()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            got += s.recv(4096)
            time.sleep(0.002)
        status, headers, body = _read_response(s, got)
    assert status == b"HTTP/1.1 206 Partial Content"
    boundary = headers["content-type"].partition("boundary=")[2].encode()
    parts = body.split(b"--" + boundary)
    assert parts[0] == b"\r\n" or parts[0] == b""
    assert parts[-1].strip() == b"--"
    for part, (first, last) in zip(parts[1:-1], spans, strict=True):
        head, _, content = part.partition(b"\r\n\r\n")
        assert f"Content-Range: bytes {first}-{last}/{len(data)}".encode() in head
        assert content.removesuffix(b"\r\n") == data[first : last + 1]


@pytest.mark.slow
def test_stalled_client_is_cut_off_and_nothing_is_left(serve, root: Path, loop: str) -> None:
    """A client that stops reading mid-file is cut off at ``--send-timeout``; the server's
    descriptors come back to what they were and its loop goes idle."""
    web = serve(
        "--path", str(root), "--no-access-log", "--send-timeout", "1", runner=["--loop", loop]
    )
    pid = web.proc.pid
    assert web.get("/1k.bin")[0] == 200
    fds = _settled_fds(pid)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s.settimeout(10)
        s.connect(("127.0.0.1", web.port))
        s.sendall(b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(3.5)  # more than the timeout and the once-a-second sweep
        got = 0
        try:
            while chunk := s.recv(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
    assert got < SIZES["large.bin"]
    deadline = time.monotonic() + 5
    while _fds(pid) > fds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fds(pid) == fds
    before = _cpu_seconds(pid)
    time.sleep(1.0)
    assert _cpu_seconds(pid) - before < 0.2
    assert web.get("/above.bin")[0] == 200


def test_file_that_shrinks_while_sent_aborts(
    serve, root: Path, files: dict[str, bytes], loop: str
) -> None:
    """A file cut short during its sending ends the connection early: the client sees
    fewer bytes than promised, and what it got up to the new end is the file's own.

    Past the new end, bytes already handed to the kernel by sendfile come from the
    file's pages as they are when they leave: here zeros (tmpfs zeroes the cut part
    of a large page), elsewhere the old bytes. The short response is what tells.
    """
    web = serve("--path", str(root), "--no-access-log", runner=["--loop", loop])
    data = files["large.bin"]
    cut = 1024 * 1024
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        s.settimeout(10)
        s.connect(("127.0.0.1", web.port))
        s.sendall(b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)  # the socket is full; the server waits to send the rest
        with open(root / "large.bin", "r+b") as fh:
            fh.truncate(cut)
        got = bytearray()
        try:
            while chunk := s.recv(1 << 20):
                got += chunk
        except ConnectionResetError:
            pass
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert f"Content-Length: {len(data)}".encode() in head
    assert cut <= len(body) < len(data)
    assert body[:cut] == data[:cut]
    assert web.get("/1k.bin")[0] == 200


def test_gzip_of_a_large_text_file_is_exact(serve, tmp_path: Path, loop: str) -> None:
    """A text file above the sendfile size still goes out compressed to gzip clients
    (and exact, by sendfile, to the others)."""
    folder = tmp_path / "text"
    folder.mkdir()
    text = b"".join(b"line %d of a stylesheet, long enough to compress;\n" % i for i in range(9000))
    assert len(text) > SENDFILE_FROM
    (folder / "big.css").write_bytes(text)
    web = serve("--path", str(folder), "--no-access-log", runner=["--loop", loop])
    with httpx.Client(base_url=web.base, timeout=30) as client:
        for _ in range(2):
            r = client.get("/big.css", headers={"Accept-Encoding": "gzip"})
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.content == text  # httpx decompresses
            assert int(r.headers["Content-Length"]) < len(text)
            r = client.get("/big.css", headers={"Accept-Encoding": "identity"})
            assert "Content-Encoding" not in r.headers and r.content == text


def test_tls_downloads_are_exact(
    tapster_proc: Any, root: Path, files: dict[str, bytes], tmp_path: Path, loop: str
) -> None:
    """Through TLS (no sendfile there) every size arrives exact: from memory up to the
    cache's limit, read in pieces beyond it, ranges included."""
    tls = make_tls_files(tmp_path)
    port = free_port()
    tapster_proc.start(
        "--loop",
        loop,
        "web",
        "--no-access-log",
        "--listen",
        f"ssl:{port}:privateKey={tls['key']}:certKey={tls['cert']}:interface=127.0.0.1",
        "--path",
        str(root),
    )
    wait_for_port(port, timeout=20)
    context = ssl.create_default_context(cafile=str(tls["ca"]))
    base = f"https://localhost:{port}"
    with httpx.Client(base_url=base, verify=context, timeout=60) as client:
        for _ in range(2):  # the first round reads into the cache
            for name, data in files.items():
                r = client.get(f"/{name}")
                assert r.status_code == 200 and r.content == data, name
        for name in ("above.bin", "uncached.bin", "large.bin"):
            data = files[name]
            r = client.get(f"/{name}", headers={"Range": f"bytes=5-{SENDFILE_FROM + 5}"})
            assert r.status_code == 206 and r.content == data[5 : SENDFILE_FROM + 6], name


def test_sendfile_waits_for_what_the_transport_holds(run_async: Any, tmp_path: Path) -> None:
    """In process, so the transport can be made to hold a response: with its flow
    control's high mark raised, a large compressed answer stays in the transport's
    buffer while the client reads nothing, and the file asked for behind it must wait
    until that buffer is empty before its sendfile (on each loop)."""
    import asyncio
    import base64
    import gzip

    from tapster.web._config import WebConfig
    from tapster.web._server import WebServer

    root = tmp_path / "site"
    root.mkdir()
    # Compressed, still more than the kernel's socket buffers hold (up to 4 MiB here).
    text = base64.encodebytes(os.urandom(5_500_000))
    (root / "noise.css").write_bytes(text)
    data = os.urandom(5 * 1024 * 1024)
    (root / "big.bin").write_bytes(data)
    ask_text = b"GET /noise.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"

    async def response(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        return headers, await reader.readexactly(int(headers["content-length"]))

    async def main() -> None:
        server = WebServer(WebConfig(root=str(root), access_log=False))
        server.start()
        listener = await asyncio.get_running_loop().create_server(server.protocol, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
            writer.write(ask_text)  # compressed once, before the test proper
            assert gzip.decompress((await response(reader))[1]) == text
            (conn,) = server.connections
            conn._transport.set_write_buffer_limits(high=64 * 1024 * 1024)  # type: ignore[union-attr]
            writer.write(ask_text + b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.sleep(0.5)  # read nothing meanwhile
            headers, body = await response(reader)
            assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == text
            assert (await response(reader))[1] == data
            writer.close()
        finally:
            listener.close()
            await server.close()

    run_async(main())
