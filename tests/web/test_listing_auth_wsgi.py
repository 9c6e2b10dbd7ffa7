"""Directory listings, HTTP Basic auth through --auth, WSGI applications, stopping."""

from __future__ import annotations

import base64
import json
import re
import signal
import struct
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import bcrypt
import pytest


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# -- listings ------------------------------------------------------------------------


def test_html_listing(serve, site: Path) -> None:
    (site / "<b>&\"x'.txt").write_text("tricky")
    (site / "with space #1?.txt").write_text("spaced")
    (site / "Zeta").mkdir()
    (site / "été.txt").write_text("unicode")
    web = serve("--path", str(site))
    status, headers, body = web.get("/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode()
    assert "<b>&" not in page and "&lt;b&gt;&amp;&quot;x&#x27;.txt" in page
    assert 'href="with%20space%20%231%3F.txt"' in page
    assert 'href="%C3%A9t%C3%A9.txt"' in page
    names = re.findall(r'<a href="([^"]+)">', page)
    # Folders first, then files, each alphabetically (case-insensitive).
    assert names[:3] == ["docs/", "index-less/", "Zeta/"]
    assert names.index("data.json") < names.index("hello.txt") < names.index("style.css")
    assert "1.2 KiB" in page  # hello.txt is 1200 bytes
    # Links work.
    assert web.get("/with%20space%20%231%3F.txt")[2] == b"spaced"
    assert web.get("/%C3%A9t%C3%A9.txt")[2] == b"unicode"
    assert web.get("/%3Cb%3E%26%22x'.txt")[2] == b"tricky"
    # Subfolders link back up.
    sub = web.get("/index-less/")[2].decode()
    assert 'href="../"' in sub and 'href="a.txt"' in sub


def test_json_listing(serve, site: Path) -> None:
    web = serve("--path", str(site))
    status, headers, body = web.get("/", {"Accept": "application/json"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["path"] == "/"
    by_name = {e["name"]: e for e in doc["entries"]}
    assert by_name["hello.txt"]["size"] == 1200 and by_name["hello.txt"]["type"] == "file"
    assert by_name["docs"]["type"] == "directory" and by_name["docs"]["href"] == "docs/"
    assert by_name["hello.txt"]["modified"].endswith("+00:00")
    # A browser's Accept prefers HTML.
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    assert web.get("/", {"Accept": browser})[1]["Content-Type"].startswith("text/html")


def test_no_listing_and_redirect(serve, site: Path) -> None:
    web = serve("--path", str(site), "--no-listing")
    assert web.get("/index-less/")[0] == 403
    assert web.get("/docs/")[2] == b"<h1>docs home</h1>"
    status, headers, _ = web.get("/docs?x=1")
    assert status == 301 and headers["Location"] == "/docs/?x=1"


# -- auth ----------------------------------------------------------------------------


def test_basic_auth_memory(serve, site: Path) -> None:
    web = serve("--path", str(site), "--auth", "memory:alice:s3cret:bob:hunter2")
    status, headers, body = web.get("/hello.txt")
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="tapster", charset="UTF-8"'
    assert b"hello world" not in body
    assert web.get("/hello.txt", _basic("alice", "wrong"))[0] == 401
    assert web.get("/hello.txt", _basic("mallory", "s3cret"))[0] == 401
    assert web.get("/hello.txt", {"Authorization": "Basic !!notbase64"})[0] == 401
    assert web.get("/hello.txt", {"Authorization": "Bearer abc"})[0] == 401
    status, _, body = web.get("/hello.txt", _basic("alice", "s3cret"))
    assert status == 200 and body.startswith(b"hello world")
    assert web.get("/", _basic("bob", "hunter2"))[0] == 200
    # curl's own --user works too.
    res = subprocess.run(
        ["curl", "-sS", "-u", "bob:hunter2", f"{web.base}/data.json"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert res.stdout == b'{"x": 1}'


@pytest.mark.parametrize("kind", ["file", "htpasswd"])
def test_basic_auth_password_file(serve, site: Path, tmp_path: Path, kind: str) -> None:
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    if kind == "htpasswd":
        hashed = "$2y$" + hashed[4:]  # Apache's spelling of bcrypt
    users = tmp_path / "users"
    users.write_text(f"carol:{hashed}\n")
    web = serve("--path", str(site), "--auth", f"{kind}:{users}", "--realm", "Files")
    status, headers, _ = web.get("/hello.txt")
    assert status == 401 and 'realm="Files"' in headers["WWW-Authenticate"]
    assert web.get("/hello.txt", _basic("carol", "wrong"))[0] == 401
    assert web.get("/hello.txt", _basic("carol", "correct horse"))[0] == 200


# -- WSGI ----------------------------------------------------------------------------

APP = textwrap.dedent(
    """
    import time

    def application(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/echo":
            body = environ["wsgi.input"].read()
            out = (environ["REQUEST_METHOD"] + " " + environ["QUERY_STRING"] + " "
                   + environ.get("HTTP_X_TEST", "") + " " + environ.get("REMOTE_USER", "-")
                   ).encode() + b"|" + body
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(out)))])
            return [out]
        if path == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return (b"chunk%d;" % i for i in range(100))
        if path == "/slow":
            open("slow-started", "w").close()  # the test waits for this
            time.sleep(1.0)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"slow done"]
        if path == "/boom":
            raise RuntimeError("secret internal detail")
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"app 404"]
    """
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "myapp.py").write_text(APP)
    return folder


def test_wsgi_app(serve, app_dir: Path) -> None:
    web = serve("--wsgi", "myapp:application", cwd=app_dir)
    status, _, body = web.get("/echo?a=1", {"X-Test": "yes"}, method="POST", body=b"payload")
    assert status == 200 and body == b"POST a=1 yes -|payload"
    status, headers, body = web.get("/stream")
    assert status == 200 and body == b"".join(b"chunk%d;" % i for i in range(100))
    assert headers["Transfer-Encoding"] == "chunked"
    status, _, body = web.get("/boom")
    assert status == 500 and b"secret internal detail" not in body and b"Traceback" not in body
    assert web.get("/nothing")[2] == b"app 404"
    # Keep-alive across WSGI responses.
    c = web.conn()
    for _ in range(3):
        c.request("GET", "/stream")
        assert c.getresponse().read().startswith(b"chunk0;")
    c.close()


def test_wsgi_with_files_and_auth(serve, app_dir: Path) -> None:
    (app_dir / "static.txt").write_text("static!")
    web = serve(
        "--wsgi",
        "myapp:application",
        "--path",
        str(app_dir),
        "--auth",
        "memory:u:p",
        cwd=app_dir,
    )
    assert web.get("/static.txt")[0] == 401
    assert web.get("/static.txt", _basic("u", "p"))[2] == b"static!"
    assert web.get("/echo", _basic("u", "p"))[2] == b"GET   u|"
    raw = web.raw(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n"
        b"Authorization: " + _basic("u", "p")["Authorization"].encode() + b"\r\n\r\nhello there"
    )
    assert raw.endswith(b"POST   u|hello there")


def test_wsgi_bad_spec_is_usage_error(tapster_proc, tmp_path: Path) -> None:
    from support import run_tapster

    res = run_tapster(["web", "--wsgi", "nosuchmodule:app"], cwd=tmp_path)
    assert res.returncode == 2
    assert "nosuchmodule" in res.stderr and "Traceback" not in res.stderr
    res = run_tapster(["web", "--listen", "bogus:1"], cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_graceful_stop_finishes_in_flight(serve, app_dir: Path) -> None:
    web = serve("--wsgi", "myapp:application", cwd=app_dir)
    result: dict[str, object] = {}

    def fetch() -> None:
        result["response"] = web.get("/slow")

    t = threading.Thread(target=fetch)
    t.start()
    deadline = time.monotonic() + 15
    while not (app_dir / "slow-started").exists():
        assert time.monotonic() < deadline, "the request never reached the application"
        time.sleep(0.02)
    web.proc.send_signal(signal.SIGTERM)
    t.join(15)
    status, headers, body = result["response"]  # type: ignore[misc]
    assert status == 200 and body == b"slow done"
    assert headers["Connection"] == "close"
    assert web.proc.wait(10) == 0


def test_wsgi_worker_is_freed_when_client_leaves(serve, tmp_path: Path) -> None:
    (tmp_path / "endless.py").write_text(
        "import time\n"
        "def app(environ, start_response):\n"
        "    if environ['PATH_INFO'] == '/forever':\n"
        "        start_response('200 OK', [('Content-Type', 'application/octet-stream')])\n"
        "        return (b'x' * 65536 for _ in iter(int, 1))\n"
        "    if environ['PATH_INFO'] == '/late':\n"
        "        time.sleep(0.5)\n"
        "        start_response('200 OK', [('Content-Length', '40')])\n"
        "        return [b'ok'] * 20\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n"
    )
    web = serve("--wsgi", "endless:app", "--threads", "1", cwd=tmp_path)
    import socket as _socket

    for path in (b"/forever", b"/late"):
        s = _socket.create_connection(("127.0.0.1", web.port), timeout=10)
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        if path == b"/forever":
            assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
        else:
            time.sleep(0.1)
        # Reset, not a polite close: the server sees the connection lost at once.
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(1.0)
    start = time.monotonic()
    status, _, body = web.get("/")
    assert status == 200 and body == b"ok"
    assert time.monotonic() - start < 5


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_shutdown_timeout_bounds_a_wsgi_call(serve, tmp_path: Path, loop: str) -> None:
    """A call that outlives ``--shutdown-timeout`` is abandoned: the process leaves on
    time, the client's connection is closed, and nothing prints a traceback."""
    import socket as _socket

    started = tmp_path / "started"
    (tmp_path / "sleepy.py").write_text(
        "import pathlib, time\n"
        "def app(environ, start_response):\n"
        f"    pathlib.Path({str(started)!r}).touch()\n"
        "    time.sleep(10)\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n"
    )
    runner = ["--loop", loop, "--shutdown-timeout", "2"]
    web = serve("--wsgi", "sleepy:app", cwd=tmp_path, runner=runner)
    client = _socket.create_connection(("127.0.0.1", web.port), timeout=15)
    client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 10
    while not started.exists():
        assert time.monotonic() < deadline, "the application was never called"
        time.sleep(0.02)
    start = time.monotonic()
    web.proc.send_signal(signal.SIGTERM)
    try:
        status = web.proc.wait(15)
    finally:
        took = time.monotonic() - start
    _, err = web.proc.communicate()
    with client:
        try:
            answer = client.recv(65536)
        except ConnectionResetError:
            answer = b""
    assert status == 0, err
    assert took < 3.0, f"the process left {took:.1f} s after SIGTERM, with a 2 s budget"
    assert answer == b"", answer  # closed, not answered
    assert "Traceback" not in err and "Event loop is closed" not in err, err
    assert "ERROR" not in err and "failed" not in err, err


def test_stop_closes_idle_keep_alive_connections_at_once(serve, site_dir: Path) -> None:
    web = serve("--path", str(site_dir))
    idle = [web.conn() for _ in range(5)]
    for c in idle:
        c.request("GET", "/a.txt")
        assert c.getresponse().read() == b"a"
    start = time.monotonic()
    web.proc.send_signal(signal.SIGTERM)
    assert web.proc.wait(15) == 0
    assert time.monotonic() - start < 5  # not the 30 s drain budget
    for c in idle:
        c.close()


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text("a")
    return tmp_path


def test_anonymous_beside_passwords(serve, site: Path) -> None:
    web = serve("--path", str(site), "--auth", "anonymous", "--auth", "memory:a:b")
    assert web.get("/data.json")[0] == 200  # no credentials: anonymous
    assert web.get("/data.json", _basic("a", "b"))[0] == 200
    assert web.get("/data.json", _basic("a", "wrong"))[0] == 401  # a wrong password still fails
