"""``--loop-stall``: a handler that blocks the loop is named, file and line, once per stall."""

from __future__ import annotations

import re
import signal
import socket
import threading
from pathlib import Path

from admin_client import get_json, request, samples, wait_for
from support import free_port

BLOCKING_APP = """\
import time
from tapster.internet import TCPServer
from tapster.service import Application

async def handle(reader, writer):
    await reader.readline()
    time.sleep(1)  # BLOCKING-LINE
    writer.write(b"done\\n")
    await writer.drain()
    writer.close()

application = Application("blocking")
TCPServer(PORT, handle, interface="127.0.0.1").set_parent(application)
"""


def test_a_blocking_handler_is_named_with_its_file_and_line(tapster_proc, tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    tac = tmp_path / "app.tac"
    tac.write_text(BLOCKING_APP.replace("PORT", str(port)))
    line = next(n for n, text in enumerate(tac.read_text().splitlines(), 1) if "BLOCKING" in text)
    log = tmp_path / "app.log"
    proc = tapster_proc.start(
        "--logfile", str(log), "--loop-stall", "0.3",
        "--admin", f"tcp:{admin}:interface=127.0.0.1", "-y", "app.tac", cwd=tmp_path,
    )  # fmt: skip
    wait_for(lambda: request(admin, "/readyz")[0] == 200, 15, "readiness")

    answers: list[bytes] = []

    def client() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"go\n")
            answers.append(sock.recv(100))

    thread = threading.Thread(target=client)
    thread.start()
    # While the loop is blocked, the admin thread still answers, and says where.
    status, body = wait_for(
        lambda: (r := get_json(admin, "/livez"))[0] == 503 and r, 3, "/livez to fail"
    )
    assert f"app.tac:{line} in handle" in body["reasons"][0]
    status, body = get_json(admin, "/readyz")
    assert status == 503 and "has not turned" in body["reasons"][0]
    thread.join(5)
    assert answers == [b"done\n"]
    wait_for(lambda: "turned again" in log.read_text(), 3, "the end of the stall")
    assert request(admin, "/livez")[0] == 200

    text = log.read_text()
    warnings = [entry for entry in text.split("\n20") if "WARNING tapster.loopwatch" in entry]
    assert len(warnings) == 2, text  # one when it began, one when it ended
    assert f"blocked at app.tac:{line} in handle" in warnings[0]
    assert "time.sleep(1)  # BLOCKING-LINE" in warnings[0]  # the stack, with the source line
    length = float(re.search(r"a stall of ([0-9.]+) s", warnings[1]).group(1))
    assert 0.6 <= length <= 1.2

    found = samples(request(admin, "/metrics")[2].decode())
    assert found[("tapster_event_loop_stalls_total", ())] == 1
    assert (
        found[("tapster_event_loop_stall_seconds_total", ())] == length
        or abs(found[("tapster_event_loop_stall_seconds_total", ())] - length) < 0.01
    )
    assert found[("tapster_event_loop_lag_seconds_bucket", (("le", "+Inf"),))] >= 1
    assert (
        found[("tapster_event_loop_lag_seconds_bucket", (("le", "0.5"),))]
        < found[("tapster_event_loop_lag_seconds_bucket", (("le", "+Inf"),))]
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_loop_stall_zero_turns_the_watchdog_off(tapster_proc, tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "app.tac").write_text(BLOCKING_APP.replace("PORT", str(port)))
    log = tmp_path / "app.log"
    proc = tapster_proc.start(
        "--logfile", str(log), "--loop-stall", "0", "-y", "app.tac", cwd=tmp_path
    )
    wait_for(lambda: "ready, listening" in log.read_text(), 15, "readiness")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"go\n")
        assert sock.recv(100) == b"done\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert "tapster.loopwatch" not in log.read_text()
    assert not any(t.name == "tapster-loop-watchdog" for t in threading.enumerate())
