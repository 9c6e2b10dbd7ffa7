"""HTTPS through the real ``tapster web`` on the standard loop and on uvloop.

Every TLS connection must leave the log clean (no ERROR, no WARNING), and a
stop must keep account of TLS connections like any other: a download in
flight finishes within the budget, a stalled one is closed when it runs out.
"""

from __future__ import annotations

import http.client
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import Any

from support import free_port, make_tls_files

#: Larger than what the socket buffers can hold, so a download is still in
#: flight when the stop begins if the client reads slowly.
BIG = 24 * 1024 * 1024


class Https:
    """A ``tapster web`` serving ``site`` on one TLS listener (Twisted's key names)."""

    def __init__(self, tapster_proc: Any, tmp_path: Path, loop: str, budget: float) -> None:
        tls = make_tls_files(tmp_path)
        self.site = tmp_path / "site"
        self.site.mkdir()
        (self.site / "hello.txt").write_bytes(b"hello over tls\n")
        (self.site / "big.bin").write_bytes(bytes(range(256)) * (BIG // 256))
        self.port = free_port()
        self.context = ssl.create_default_context(cafile=str(tls["ca"]))
        self.proc = tapster_proc.start(
            "--loop",
            loop,
            "--shutdown-timeout",
            str(budget),
            "web",
            "--listen",
            f"ssl:{self.port}:privateKey={tls['key']}:certKey={tls['cert']}:interface=127.0.0.1",
            "--path",
            str(self.site),
        )
        self._wait_ready()

    def connect(self, timeout: float = 10.0) -> ssl.SSLSocket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.context.wrap_socket(sock, server_hostname="localhost")

    def _wait_ready(self) -> None:
        # A TLS handshake, not a bare connect: readiness of the TLS listener itself.
        deadline = time.monotonic() + 20
        while True:
            try:
                self.connect(timeout=1.0).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.proc.communicate()
                assert time.monotonic() < deadline, "the TLS listener never answered"
                time.sleep(0.05)

    def get_then_close_notify(self, path: str) -> bytes:
        """One request; the client ends the TLS session properly (close_notify, then FIN)."""
        with self.connect() as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            response = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
            response.begin()
            body = response.read()
            assert response.status == 200
            tls.unwrap().close()  # the server sees the peer's EOF here
        return body

    def stop(self, *, signalled: bool = False) -> tuple[int, str, float]:
        """SIGTERM (unless ``signalled`` already) and wait: (exit code, output, seconds)."""
        started = time.monotonic()
        if not signalled:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out + err, time.monotonic() - started


def assert_clean(log: str) -> None:
    bad = [line for line in log.splitlines() if " ERROR " in line or " WARNING " in line]
    assert not bad and "Traceback" not in log, log


def test_https_leaves_the_log_clean_and_a_stop_waits_for_a_download_in_flight(
    tapster_proc: Any, tmp_path: Path, loop: str
) -> None:
    web = Https(tapster_proc, tmp_path, loop, budget=20)
    # Clients that end their sessions properly: the server reads their EOF.
    for _ in range(2):
        assert web.get_then_close_notify("/hello.txt") == b"hello over tls\n"
    # A download in flight when the stop begins: the drain waits for it.
    with web.connect() as tls:
        tls.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
        response.begin()
        assert response.status == 200
        first = response.read(65536)
        web.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the stop is under way; the client has not read the rest yet
        rest = response.read()
    assert len(first) + len(rest) == BIG
    code, log, _ = web.stop(signalled=True)
    assert code == 0, log
    assert "application 'web' stopped" in log
    assert "closed" not in log  # nothing had to be cut
    assert_clean(log)


def test_a_stalled_https_download_is_closed_when_the_budget_runs_out(
    tapster_proc: Any, tmp_path: Path, loop: str
) -> None:
    web = Https(tapster_proc, tmp_path, loop, budget=1.5)
    with web.connect() as tls:
        tls.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert tls.recv(4096).startswith(b"HTTP/1.1 200")
        # Read nothing more: the response cannot finish, the stop must cut it.
        code, log, took = web.stop()
        received = 0
        try:
            while chunk := tls.recv(1 << 20):
                received += len(chunk)
        except (ssl.SSLError, OSError):
            pass  # an abort may end the stream with a reset
    assert code == 0, log
    assert took < 1.5 + 1.5, f"the stop took {took:.2f}s with a budget of 1.5s"
    assert received < BIG
    # The stream server's drain saw the TLS connection, and closed it itself.
    assert "closed 1 connection(s) on ssl:127.0.0.1" in log, log
    assert_clean(log)
