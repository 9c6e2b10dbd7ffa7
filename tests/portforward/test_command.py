"""``tapster portforward`` as a user runs it: the real command between real sockets."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from support import free_port, run_tapster

Handler = Callable[[socket.socket], None]


@contextmanager
def destination(handler: Handler) -> Iterator[int]:
    """A threaded TCP server on 127.0.0.1 running ``handler(conn)`` per connection."""

    class _Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            handler(self.request)

    class _Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 512

    with _Server(("127.0.0.1", 0), _Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


@pytest.fixture(params=["splice", "transport"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each data-path test runs on both forwarding engines."""
    return str(request.param)


def start_proxy(
    tapster_proc, log: Path, dest_port: int, *extra: str, engine: str = "auto"
) -> tuple[object, int]:
    port = free_port()
    proc = tapster_proc.start(
        "--logfile",
        str(log),
        "portforward",
        "--port",
        f"tcp:{port}:interface=127.0.0.1",
        "--host",
        "127.0.0.1",
        "--dest-port",
        str(dest_port),
        "--engine",
        engine,
        *extra,
    )
    wait_listening(proc, port, log)
    return proc, port


def wait_listening(proc, port: int, log: Path, timeout: float = 20.0) -> None:
    """Wait until the proxy accepts on ``port``; fail with its own words if it died."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    status = proc.poll()
    text = log.read_text() if log.exists() else ""
    err = proc.stderr.read() if status is not None and proc.stderr else ""
    raise AssertionError(
        f"tapster portforward not listening on {port} (exit status {status}):\n"
        f"{text[-2000:]}\n{err[-2000:]}"
    )


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_bytes_both_ways_and_counters_on_stop(tapster_proc, tmp_path: Path, engine: str) -> None:
    log = tmp_path / "pf.log"
    with destination(echo) as dest_port:
        proc, port = start_proxy(tapster_proc, log, dest_port, engine=engine)
        sent = 0
        for size in (1, 1000, 200_000):
            payload = os.urandom(size)
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)
                got = b"".join(iter(lambda c=c: c.recv(65536), b""))
            assert got == payload
            sent += size
        stop(proc)
    body = log.read_text()
    assert f"to 127.0.0.1:{dest_port}" in body
    # wait_listening's probe counts as a connection too.
    counters = (
        rf"stopped: 4 connections \(0 rejected, 0 failed to connect, peak \d at once\), "
        rf"{sent} bytes to the destination, {sent} bytes from it"
    )
    assert re.search(counters, body), body


def test_half_close_through_the_command(tapster_proc, tmp_path: Path, engine: str) -> None:
    def hasher(conn: socket.socket) -> None:
        digest = hashlib.sha256()
        while data := conn.recv(65536):
            digest.update(data)
        conn.sendall(digest.hexdigest().encode())

    with destination(hasher) as dest_port:
        proc, port = start_proxy(tapster_proc, tmp_path / "pf.log", dest_port, engine=engine)
        payload = os.urandom(3_000_000)
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)  # our half is done; the answer must still arrive
            answer = b"".join(iter(lambda: c.recv(65536), b""))
        assert answer == hashlib.sha256(payload).hexdigest().encode()
        stop(proc)


def test_slow_reader_keeps_proxy_memory_bounded(tapster_proc, tmp_path: Path, engine: str) -> None:
    total = 64 * 1024 * 1024
    chunk = os.urandom(1024 * 1024)
    expected = hashlib.sha256()
    for _ in range(total // len(chunk)):
        expected.update(chunk)

    def firehose(conn: socket.socket) -> None:
        for _ in range(total // len(chunk)):
            conn.sendall(chunk)

    with destination(firehose) as dest_port:
        proc, port = start_proxy(tapster_proc, tmp_path / "pf.log", dest_port, engine=engine)
        before = rss_kib(proc.pid)
        peak = before
        got = hashlib.sha256()
        received = 0
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            # Read nothing for a while: the destination can send far faster.
            for _ in range(15):
                time.sleep(0.1)
                peak = max(peak, rss_kib(proc.pid))
            while data := c.recv(256 * 1024):
                got.update(data)
                received += len(data)
                if received % (8 * 1024 * 1024) < len(data):
                    peak = max(peak, rss_kib(proc.pid))
        assert received == total
        assert got.digest() == expected.digest()
        # Without backpressure the proxy would hold most of the 64 MiB.
        print(f"proxy RSS {before} KiB before, {peak} KiB at most")
        assert peak - before < 16 * 1024, (before, peak)
        stop(proc)


def test_many_connections_at_once(tapster_proc, tmp_path: Path, engine: str) -> None:
    with destination(echo) as dest_port:
        proc, port = start_proxy(tapster_proc, tmp_path / "pf.log", dest_port, engine=engine)
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(150)]
        try:
            payloads = [os.urandom(500 + i) for i in range(len(conns))]
            for c, p in zip(conns, payloads, strict=True):
                c.sendall(p)
            for c, p in zip(conns, payloads, strict=True):
                c.settimeout(10)
                got = b""
                while len(got) < len(p):
                    got += c.recv(65536)
                assert got == p
        finally:
            for c in conns:
                c.close()
        stop(proc)
    # 150, or 151 when wait_listening's probe was still being forwarded.
    assert re.search(r"peak 15[01] at once", (tmp_path / "pf.log").read_text())


def test_max_connections_and_unreachable_destination(
    tapster_proc, tmp_path: Path, engine: str
) -> None:
    log = tmp_path / "pf.log"
    with destination(echo) as dest_port:
        proc, port = start_proxy(
            tapster_proc, log, dest_port, "--max-connections", "2", engine=engine
        )

        def forwarded() -> socket.socket:
            # wait_listening's probe may still hold a slot for a moment: retry.
            for _ in range(50):
                c = socket.create_connection(("127.0.0.1", port))
                c.settimeout(5)
                c.sendall(b"x")
                try:
                    if c.recv(1) == b"x":
                        return c
                except ConnectionResetError:
                    pass
                c.close()
                time.sleep(0.1)
            raise AssertionError("no slot became free")

        held = [forwarded(), forwarded()]
        extra = socket.create_connection(("127.0.0.1", port))
        extra.settimeout(5)
        with suppress(ConnectionResetError):
            assert extra.recv(1) == b""
        extra.close()
        for c in held:
            c.close()
        stop(proc)
    assert re.search(r"\(([1-9]\d*) rejected", log.read_text())

    dead = free_port()
    log2 = tmp_path / "pf2.log"
    proc, port = start_proxy(tapster_proc, log2, dead, engine=engine)
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.settimeout(5)
        with suppress(ConnectionResetError):
            assert c.recv(1) == b""
    stop(proc)
    body = log2.read_text()
    assert f"Couldn't connect to 127.0.0.1:{dead}: Connection refused" in body
    assert "failed to connect" in body


def test_dest_endpoint_string(tapster_proc, tmp_path: Path) -> None:
    with destination(echo) as dest_port:
        port = free_port()
        proc = tapster_proc.start(
            "--logfile",
            str(tmp_path / "pf.log"),
            "portforward",
            "--port",
            f"tcp:{port}:interface=127.0.0.1",
            "--dest",
            f"tcp:host=127.0.0.1:port={dest_port}",
        )
        wait_listening(proc, port, tmp_path / "pf.log")
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"via endpoint")
            c.shutdown(socket.SHUT_WR)
            assert b"".join(iter(lambda: c.recv(100), b"")) == b"via endpoint"
        stop(proc)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "nonsense:1"], "--port: bad endpoint 'nonsense:1'"),
        (["--dest", "tcp:host=x"], "--dest: bad endpoint 'tcp:host=x'"),
        (["--dest-port", "70000"], "--dest-port"),
        (["--max-connections", "0"], "--max-connections"),
        (["--engine", "fast"], "--engine"),
        (
            ["--engine", "splice", "--dest", "ssl:host=127.0.0.1:port=1"],
            "--engine splice cannot be used here: the destination is not a plain TCP or Unix",
        ),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(args: list[str], message: str) -> None:
    result = run_tapster(["portforward", *args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unix_socket_destination(tapster_proc, tmp_path: Path, engine: str) -> None:
    path = tmp_path / "dest.sock"

    class _Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            echo(self.request)

    class _Server(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True

    with _Server(str(path), _Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = free_port()
        proc = tapster_proc.start(
            "--logfile",
            str(tmp_path / "pf.log"),
            "portforward",
            "--port",
            f"tcp:{port}:interface=127.0.0.1",
            "--dest",
            f"unix:path={path}",
            "--engine",
            engine,
        )
        wait_listening(proc, port, tmp_path / "pf.log")
        payload = os.urandom(500_000)
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            assert b"".join(iter(lambda: c.recv(65536), b"")) == payload
        stop(proc)
        server.shutdown()
    assert f"({engine} engine)" in (tmp_path / "pf.log").read_text()


def test_out_of_file_descriptors_is_survived(tapster_proc, tmp_path: Path, engine: str) -> None:
    import resource

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    with destination(echo) as dest_port:
        port = free_port()
        proc = tapster_proc.start(
            "--logfile",
            str(tmp_path / "pf.log"),
            "portforward",
            "--port",
            f"tcp:{port}:interface=127.0.0.1",
            "--host",
            "127.0.0.1",
            "--dest-port",
            str(dest_port),
            "--engine",
            engine,
            preexec_fn=low_fd_limit,
        )
        wait_listening(proc, port, tmp_path / "pf.log")
        # Far more connections than 64 descriptors allow: some fail or hang, none crash it.
        flood = []
        for _ in range(60):
            c = socket.create_connection(("127.0.0.1", port))
            c.settimeout(0.5)
            flood.append(c)
        time.sleep(0.3)
        for c in flood:
            c.close()
        # Once the descriptors are back, it forwards again.
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                    c.sendall(b"alive?")
                    c.settimeout(2)
                    if c.recv(6) == b"alive?":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the proxy did not recover"
            time.sleep(0.2)
        assert proc.poll() is None
        stop(proc)
