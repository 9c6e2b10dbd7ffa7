"""``tapster --admin`` on a single process: probes, metrics, status, readiness reasons."""

from __future__ import annotations

import base64
import http.client
import signal
import socket
import time
from pathlib import Path

from admin_client import get_json, request, samples, wait_for
from support import free_port

READY_APP = """\
import asyncio, os
from tapster.service import Application, Service

class Database(Service):
    name = "database"
    async def readiness(self):
        if not os.path.exists("db-up"):
            return "the database is down"
        return None

class Slow(Service):
    name = "slow"
    async def readiness(self):
        if os.path.exists("slow"):
            await asyncio.sleep(5)

class Broken(Service):
    name = "broken"
    async def readiness(self):
        if os.path.exists("broken"):
            raise ConnectionRefusedError("no queue")

class SlowStop(Service):
    name = "slowstop"
    async def start(self):
        await asyncio.sleep(float(os.environ.get("START_DELAY", "0")))
    async def stop(self):
        await asyncio.sleep(1.5)

application = Application("ready-app")
for service in (Database(), Slow(), Broken(), SlowStop()):
    service.set_parent(application)
"""


def start_admin(tapster_proc, folder: Path, *args: str, env=None):
    admin = free_port()
    log = folder / "app.log"
    proc = tapster_proc.start(
        "--logfile",
        str(log),
        "--admin",
        f"tcp:{admin}:interface=127.0.0.1",
        *args,
        cwd=folder,
        env=env,
    )
    wait_for(lambda: request(admin, "/livez")[0] == 200, 15, "the admin endpoint")
    return proc, admin, log


def web_get(port: int, path: str, method: str = "GET", auth: str | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_probes_metrics_and_status_of_a_web_server(tapster_proc, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "hello.txt").write_text("hello\n")
    web = free_port()
    proc, admin, _log = start_admin(
        tapster_proc,
        tmp_path,
        "web",
        "--path",
        "site",
        "--listen",
        f"tcp:{web}:interface=127.0.0.1",
        "--auth",
        "memory:alice:s3cret",
    )
    wait_for(lambda: request(admin, "/startupz")[0] == 200, 10, "start-up")
    status, body = get_json(admin, "/readyz")
    assert (status, body) == (200, {"ready": True, "reasons": []})
    assert get_json(admin, "/livez") == (200, {"live": True, "reasons": []})

    status, headers, text = request(admin, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = samples(text.decode())
    assert found[("process_open_fds", ())] > 3
    assert found[("process_resident_memory_bytes", ())] > 1e6
    assert abs(found[("process_start_time_seconds", ())] - time.time()) < 60
    assert ("tapster_event_loop_lag_seconds_count", ()) in found
    wait_for(
        lambda: (
            samples(request(admin, "/metrics")[2].decode())[
                ("tapster_event_loop_lag_seconds_count", ())
            ]
            >= 2
        ),
        5,
        "the loop's ticks in the lag histogram",
    )

    # Known traffic, then the figures it must give.
    assert [web_get(web, "/hello.txt", auth="alice:s3cret") for _ in range(3)] == [200] * 3
    assert web_get(web, "/missing", auth="alice:s3cret") == 404
    assert web_get(web, "/hello.txt", auth="alice:wrong") == 401
    assert web_get(web, "/hello.txt", "HEAD", auth="alice:s3cret") == 200
    found = samples(request(admin, "/metrics")[2].decode())
    requests = {
        (dict(labels)["method"], dict(labels)["status"]): value
        for (name, labels), value in found.items()
        if name == "tapster_web_requests_total"
    }
    assert requests == {("GET", "2xx"): 3, ("GET", "4xx"): 2, ("HEAD", "2xx"): 1}
    assert found[("tapster_web_request_duration_seconds_count", (("method", "GET"),))] == 5
    assert 0 < found[("tapster_web_request_duration_seconds_sum", (("method", "GET"),))] < 5
    assert found[("tapster_web_response_body_bytes_total", ())] >= 3 * len("hello\n")
    listener = (("listener", f"tcp:127.0.0.1:{web}"),)
    assert found[("tapster_listener_connections_accepted_total", listener)] == 6
    # The server may see the last client's close a moment after the client made it.
    wait_for(
        lambda: (
            samples(request(admin, "/metrics")[2].decode())[
                ("tapster_listener_connections_open", listener)
            ]
            == 0
        ),
        5,
        "every client connection seen closed",
    )
    logins = {
        labels: value
        for (name, labels), value in found.items()
        if name == "tapster_cred_logins_total"
    }
    # web keeps a good login for a while: the password was checked once.
    assert logins == {
        (("checker", "InMemoryUsernamePasswordChecker"), ("result", "succeeded")): 1,
        (("checker", "InMemoryUsernamePasswordChecker"), ("result", "failed")): 1,
    }

    status, headers, text = request(
        admin, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith(b"# EOF\n")
    assert ("process_cpu_seconds_total", ()) in samples(text.decode(), openmetrics=True)

    status, info = get_json(admin, "/status.json")
    assert info["application"] == "web" and info["state"] == "ready"
    assert info["pid"] == proc.pid
    assert f"tcp:127.0.0.1:{web}" in info["listening"]
    status, headers, page = request(admin, "/status")
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert b"http-equiv='refresh'" in page and f"127.0.0.1:{web}".encode() in page

    assert request(admin, "/nothing")[0] == 404
    assert request(admin, "/livez", method="POST")[0] == 405
    # Kept alive between requests, closed after one that says Connection: close.
    with socket.create_connection(("127.0.0.1", admin), timeout=5) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = b""
        while chunk := sock.recv(65536):  # ends only when the server closes
            answers += chunk
    assert answers.count(b"HTTP/1.1 200 OK") == 3
    assert answers.count(b"Connection: keep-alive") == 2
    assert answers.count(b"Connection: close") == 1
    status, _, body = request(admin, "/control/stop", method="POST")
    assert status == 403 and b"unix-socket" in body
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_each_readiness_reason(tapster_proc, tmp_path: Path) -> None:
    (tmp_path / "app.tac").write_text(READY_APP)
    proc, admin, _log = start_admin(
        tapster_proc, tmp_path, "-y", "app.tac", env={"START_DELAY": "1.5"}
    )
    # The admin endpoint answers before the tree has started.
    status, body = get_json(admin, "/readyz")
    assert (status, body["reasons"]) == (503, ["start-up under way"])
    assert request(admin, "/startupz")[0] == 503
    wait_for(lambda: request(admin, "/startupz")[0] == 200, 10, "start-up")

    status, body = get_json(admin, "/readyz")
    assert (status, body["reasons"]) == (503, ["service 'database': the database is down"])
    for name in ("slow", "broken", "db-up"):
        (tmp_path / name).write_text("")
    started = time.monotonic()
    status, body = get_json(admin, "/readyz")
    assert time.monotonic() - started < 1.5
    assert status == 503
    assert body["reasons"] == [
        "service 'slow': its readiness check did not answer within 0.8 s",
        "service 'broken': its readiness check failed: ConnectionRefusedError: no queue",
    ]
    (tmp_path / "slow").unlink()
    (tmp_path / "broken").unlink()
    assert get_json(admin, "/readyz") == (200, {"ready": True, "reasons": []})

    proc.send_signal(signal.SIGTERM)  # SlowStop takes 1.5 s to stop
    status, body = wait_for(
        lambda: (r := get_json(admin, "/readyz"))[0] == 503 and r, 5, "readiness to fail"
    )
    assert body["reasons"] == ["stopping (SIGTERM received)"]
    assert request(admin, "/livez")[0] == 200  # stopping is not dead
    assert proc.wait(10) == 0


def test_bad_admin_endpoint_is_a_usage_error(tapster_proc, tmp_path: Path) -> None:
    proc = tapster_proc.start("--admin", "tcp:notaport", "web", cwd=tmp_path)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "--admin" in err and "Traceback" not in err


def test_admin_port_in_use_is_a_start_up_failure(tapster_proc, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = tapster_proc.start(
            "--admin", f"tcp:{port}:interface=127.0.0.1", "web", "--listen", "tcp:0", cwd=tmp_path
        )
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("tapster: cannot serve --admin:"), err
    assert str(port) in err and "Traceback" not in err
