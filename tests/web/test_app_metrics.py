"""``web``'s request metrics with ``--asgi`` and ``--wsgi``: the same series, the
same labels, one count per request, as with files alone.

A real ``tapster --admin ... web`` subprocess gets known traffic (files in front of
the application, answers, the spec's error cases, ``--limit-concurrency``'s 503,
a WebSocket upgrade); ``/metrics`` is then read over HTTP and parsed with
prometheus_client's own parser.
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
from pathlib import Path

import httpx
import pytest
from admin_client import request, samples, wait_for
from asgi_apps import write_apps
from support import free_port
from websockets.sync.client import connect as ws_connect

WSGI_APP = """
def _fails_midway():
    yield b"first"
    raise RuntimeError("boom midway")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [])
        return (b"part%d" % i for i in range(3))
    if path == "/stream-boom":
        start_response("200 OK", [])
        return _fails_midway()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"app 404"]
"""


def _requests(admin: int) -> tuple[dict[tuple[str, str], float], dict]:
    """The ``tapster_web_requests_total`` series by (method, status), and every sample."""
    found = samples(request(admin, "/metrics")[2].decode())
    counted = {
        (dict(labels)["method"], dict(labels)["status"]): value
        for (name, labels), value in found.items()
        if name == "tapster_web_requests_total"
    }
    return counted, found


def _settled(admin: int, expected: dict[tuple[str, str], int]) -> dict:
    """Every sample once the requests counted are ``expected`` (the last may be a
    moment behind its client); the assertion shows the difference otherwise."""
    deadline = time.monotonic() + 5
    while True:
        counted, found = _requests(admin)
        if counted == expected or time.monotonic() > deadline:
            assert counted == expected
            return found
        time.sleep(0.05)


def _duration_counts(found: dict) -> dict[str, float]:
    return {
        dict(labels)["method"]: value
        for (name, labels), value in found.items()
        if name == "tapster_web_request_duration_seconds_count"
    }


def _serve_with_admin(serve, folder: Path, *args: str, loop: str = "uvloop") -> tuple[str, int]:
    admin = free_port()
    web = serve(
        *args,
        cwd=folder,
        env={"MARKS": str(folder / "marks")},
        runner=["--loop", loop, "--admin", f"tcp:{admin}:interface=127.0.0.1"],
    )
    wait_for(lambda: request(admin, "/livez")[0] == 200, 15, "the admin endpoint")
    return web.base, admin


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_asgi_requests_are_counted(serve, tmp_path: Path, loop: str) -> None:
    apps = write_apps(tmp_path)
    (apps / "site").mkdir()
    (apps / "site" / "hello.txt").write_text("hello\n")
    base, admin = _serve_with_admin(
        serve,
        apps,
        "--asgi",
        "plainapp:app",
        "--path",
        "site",
        "--limit-concurrency",
        "1",
        loop=loop,
    )
    with httpx.Client(base_url=base) as client:
        assert client.get("/hello.txt").text == "hello\n"  # a file, in front of the app
        assert [client.get("/app").text for _ in range(2)] == ["Hello, world!"] * 2
        assert client.post("/echo", content=b"12345").text == "12345"
        assert client.head("/app").status_code == 200
        assert client.get("/stream").text == "part0\npart1\npart2\n"
        assert client.get("/raise-before").status_code == 500
        assert client.get("/no-answer").status_code == 500
        assert client.get("/body-first").status_code == 500
    # The head (200) went out before the application raised: the connection is cut.
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(base + "/raise-after")
    # One request in the application: a second is refused by --limit-concurrency.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, base + "/sleep?2", timeout=10)
        time.sleep(1)
        assert httpx.get(base + "/app").status_code == 503
        assert slow.result().status_code == 200
    # The client leaves in the middle of a streamed response.
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK")
    wait_for(lambda: (apps / "marks" / "endless-disconnected").exists(), 10, "the app told")
    with ws_connect(base.replace("http", "ws") + "/ws/echo") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"

    expected = {
        ("GET", "1xx"): 1,  # the WebSocket upgrade
        # file, /app twice, /stream, /raise-after and /endless (their 200 went out), /sleep
        ("GET", "2xx"): 7,
        ("GET", "5xx"): 4,  # raise-before, no-answer, body-first, the 503
        ("POST", "2xx"): 1,
        ("HEAD", "2xx"): 1,
    }
    found = _settled(admin, expected)
    assert _duration_counts(found) == {"GET": 12, "POST": 1, "HEAD": 1}
    sent = found[("tapster_web_response_body_bytes_total", ())]
    # At least: the file, "Hello, world!" twice, the echo, the stream, the partial body.
    assert sent >= len("hello\n") + 2 * 13 + 5 + 18 + len("partial")


def test_wsgi_requests_are_counted(serve, tmp_path: Path) -> None:
    (tmp_path / "wsgiapp.py").write_text(WSGI_APP)
    (tmp_path / "marks").mkdir()
    base, admin = _serve_with_admin(serve, tmp_path, "--wsgi", "wsgiapp:application")
    with httpx.Client(base_url=base) as client:
        assert client.post("/echo", content=b"abc").text == "abc"
        assert client.get("/stream").text == "part0part1part2"
        assert client.get("/nothing").status_code == 404
        assert client.get("/boom").status_code == 500
        # The head (200) went out before the body failed: the connection is cut.
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/stream-boom")
    expected = {("POST", "2xx"): 1, ("GET", "2xx"): 2, ("GET", "4xx"): 1, ("GET", "5xx"): 1}
    found = _settled(admin, expected)
    assert _duration_counts(found) == {"GET": 4, "POST": 1}
    assert found[("tapster_web_response_body_bytes_total", ())] >= 3 + 15 + 7 + len("first")
