"""``--workers`` with systemd socket activation, under the real ``systemd-socket-activate``.

The supervisor adopts the socket systemd passed (``LISTEN_PID`` names it) and
hands it to its workers like any other listener; the workers never see
``LISTEN_*``.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import free_port, tapster_env, wait_for_port

ACTIVATE = "/usr/bin/systemd-socket-activate"

# Each request holds its worker 50 ms, so that parallel requests reach both.
APP = """\
import os, time

def app(environ, start_response):
    time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%d %s" % (os.getpid(), os.environ.get("LISTEN_FDS", "-"))).encode()]
"""


def _get(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.skipif(not os.access(ACTIVATE, os.X_OK), reason="no systemd-socket-activate")
def test_workers_serve_systemd_sockets(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    log = tmp_path / "tapster.log"
    command = [
        ACTIVATE, "-l", f"127.0.0.1:{port}", "--fdname=web",
        sys.executable, "-m", "tapster", "-n", "--logfile", str(log), "-w", "2",
        "web", "--listen", "systemd:name=web", "--wsgi", "app:app",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=tapster_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # systemd-socket-activate starts tapster on the first connection, which
        # then waits in the queue until a worker accepts it.
        wait_for_port(port)
        first = _get(port)
        deadline = time.monotonic() + 30
        while "ready: 2 workers" not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        answers = {first}
        deadline = time.monotonic() + 20
        while len({a.split()[0] for a in answers}) < 2 and time.monotonic() < deadline:
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                answers |= set(pool.map(lambda _: _get(port), range(16)))
        pids = {a.split()[0] for a in answers}
        assert len(pids) == 2, answers  # both workers answer on systemd's socket
        assert {a.split()[1] for a in answers} == {"-"}  # no worker saw LISTEN_FDS
        assert str(proc.pid) not in pids  # the supervisor (exec'd in place) serves nothing
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "error" not in text.lower(), text
    assert "application 'web' stopped" in text
