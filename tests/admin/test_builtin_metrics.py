"""Metrics of the built-in ``procmon`` and ``portforward``, after known activity."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from pathlib import Path

from admin_client import request, samples, wait_for
from support import free_port


def scrape(admin: int) -> dict:
    return samples(request(admin, "/metrics")[2].decode())


def start(tapster_proc, folder: Path, *args: str) -> tuple[object, int]:
    admin = free_port()
    proc = tapster_proc.start(
        "--logfile", str(folder / "app.log"), "--admin", f"tcp:{admin}:interface=127.0.0.1",
        *args, cwd=folder,
    )  # fmt: skip
    wait_for(lambda: request(admin, "/readyz")[0] == 200, 15, "readiness")
    return proc, admin


def test_procmon_counts_restarts_per_command(tapster_proc, tmp_path: Path) -> None:
    quick = f"{sys.executable} -c pass"
    proc, admin = start(
        tapster_proc, tmp_path, "procmon", "--minrestartdelay", "0.05",
        "--maxrestartdelay", "0.1", "--command", f"quick={quick}",
    )  # fmt: skip
    key = ("tapster_procmon_restarts_total", (("command", "quick"),))
    wait_for(lambda: scrape(admin).get(key, 0) >= 3, 15, "three restarts counted")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


def test_portforward_bytes_and_connections(tapster_proc, tmp_path: Path) -> None:
    with socket.socket() as upstream:
        upstream.bind(("127.0.0.1", 0))
        upstream.listen()
        dest = upstream.getsockname()[1]

        def echo_once() -> None:
            conn, _ = upstream.accept()
            with conn:
                data = conn.recv(100)
                conn.sendall(data * 2)

        server = threading.Thread(target=echo_once)
        server.start()
        port = free_port()
        proc, admin = start(
            tapster_proc, tmp_path, "portforward", "--port", f"tcp:{port}:interface=127.0.0.1",
            "--dest", f"tcp:host=127.0.0.1:port={dest}",
        )  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"12345")
            got = b""
            while len(got) < 10:
                got += client.recv(100)
            where = (("listener", f"tcp:127.0.0.1:{port}"),)
            found = scrape(admin)
            assert found[("tapster_portforward_connections_open", where)] == 1
        server.join(5)
    found = wait_for(
        lambda: (f := scrape(admin))[("tapster_portforward_connections_open", where)] == 0 and f,
        5,
        "the connection to close",
    )
    assert found[("tapster_portforward_connections_total", where)] == 1
    assert (
        found[("tapster_portforward_bytes_total", (("direction", "to_destination"), *where))] == 5
    )
    assert (
        found[("tapster_portforward_bytes_total", (("direction", "from_destination"), *where))]
        == 10
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
