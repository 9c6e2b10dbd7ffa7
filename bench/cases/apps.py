"""Case ``apps``: tapster web running applications, beside the servers people use for them.

The same application files, one process each, on 127.0.0.1, loaded by wrk with 50
keep-alive connections (WebSockets: a client of our own, below):

* hello-world ASGI: ``tapster web --asgi`` against uvicorn (httptools, uvloop) and granian;
* a Starlette JSON endpoint through each of those three;
* hello-world WSGI: ``tapster web --wsgi`` against gunicorn's gthread worker (10 threads, as
  tapster's default pool) and granian's WSGI interface;
* WebSocket echo (messages per second over 20 sockets, and per CPU second of the server)
  against uvicorn with each of its WebSocket implementations (wsproto, websockets-sansio).

The peers come from ``bench/.venv-peers`` (made on first use, ``PEER_PACKAGES``); none is a
dependency of tapster. Access logs are off on every side. The harness's second column
("twistd") holds the peer each comparison names.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

from bench import (
    P99_MS,
    REQUESTS_PER_S,
    Case,
    Comparison,
    Context,
    Metric,
    Server,
    free_port,
    http_probe,
    run_wrk,
    start_server,
)
from bench._env import ensure_peers_venv

MESSAGES_PER_S = Metric("messages_per_s", "msg/s", lower_is_better=False, label="messages")
#: Echoes per CPU second the server used. The load client is Python and runs out of its core
#: first, so both servers may show the same rate; what each spent on it still differs.
MESSAGES_PER_CPU_S = Metric(
    "messages_per_cpu_s", "msg/CPU-s", lower_is_better=False, label="server efficiency"
)

_HELLO_ASGI = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text"),
                        "bytes": message.get("bytes")})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})
"""

_HELLO_WSGI = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]
"""

_STARLETTE = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def items(request):
    return JSONResponse({"id": request.path_params["n"], "name": "widget", "tags": ["a", "b"]})


app = Starlette(routes=[Route("/items/{n:int}", items)])
"""

#: A WebSocket echo load: N sockets, each sending a 32-byte text and awaiting its echo.
#: Raw frames on uvloop rather than a WebSocket library: the message is framed and masked
#: once, every echo is checked byte for byte, and the client costs a few microseconds a
#: message, so the server (not the client, as with the ``websockets`` client this used
#: before) is what runs out of CPU first. Prints messages per second (after a warm-up
#: second) and all messages echoed (for the server's CPU per message).
_WS_LOAD = r"""
import asyncio, base64, os, sys, time
import uvloop

PAYLOAD = b"x" * 32
MASK = os.urandom(4)
FRAME = bytes([0x81, 0x80 | len(PAYLOAD)]) + MASK + bytes(
    b ^ MASK[i % 4] for i, b in enumerate(PAYLOAD))
ECHO = bytes([0x81, len(PAYLOAD)]) + PAYLOAD


class Echoer(asyncio.Protocol):
    def __init__(self, opened, until):
        self.opened, self.until, self.buf, self.count = opened, until, b"", 0
        self.head = True

    def connection_made(self, transport):
        self.transport = transport
        key = base64.b64encode(os.urandom(16))
        transport.write(b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")

    def data_received(self, data):
        buf = self.buf + data
        if self.head:
            head, sep, buf = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"not upgraded: {head[:40]!r}")
            self.head = False
            self.opened.set_result(None)
            self.transport.write(FRAME)
        while len(buf) >= len(ECHO):
            if buf[: len(ECHO)] != ECHO:
                raise SystemExit(f"wrong echo: {buf[:40]!r}")
            buf = buf[len(ECHO):]
            self.count += 1
            if time.monotonic() < self.until:
                self.transport.write(FRAME)
        self.buf = buf


async def main(port, sockets, seconds):
    loop = asyncio.get_running_loop()
    until = time.monotonic() + seconds + 1.0  # the first second warms up, uncounted
    echoers = []
    for _ in range(sockets):
        opened = loop.create_future()
        _, proto = await loop.create_connection(
            lambda o=opened: Echoer(o, until), "127.0.0.1", port)
        await opened
        echoers.append(proto)
    await asyncio.sleep(1.0)
    start = sum(e.count for e in echoers)
    await asyncio.sleep(seconds)
    counted = sum(e.count for e in echoers) - start
    await asyncio.sleep(0.2)  # the last echoes in flight
    print(counted / seconds, sum(e.count for e in echoers))


uvloop.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
"""


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Start tapster and each peer on the same application; yield one comparison per pair."""
    peers = ensure_peers_venv()
    folder = ctx.tmpdir / "apps"
    folder.mkdir(exist_ok=True)
    (folder / "hello_asgi.py").write_text(_HELLO_ASGI)
    (folder / "hello_wsgi.py").write_text(_HELLO_WSGI)
    (folder / "star.py").write_text(_STARLETTE)
    (folder / "ws_load.py").write_text(_WS_LOAD)
    duration = 2.0 if ctx.quick else 5.0
    env = ctx.env()
    peer_bin = peers.parent

    def tapster(kind: str, spec: str, port: int) -> list[str]:
        return [
            ctx.tapster_bin("tapster"),
            "--loop",
            "uvloop",
            "web",
            f"--{kind}",
            spec,
            "--no-access-log",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
        ]

    def uvicorn(spec: str, port: int, ws: str = "wsproto") -> list[str]:
        return [
            str(peer_bin / "uvicorn"),
            spec,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--ws",
            ws,
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    def granian(interface: str, spec: str, port: int) -> list[str]:
        return [
            str(peer_bin / "granian"),
            "--interface",
            interface,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            spec,
        ]

    def gunicorn(spec: str, port: int) -> list[str]:
        return [
            str(peer_bin / "gunicorn"),
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            "10",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            spec,
        ]

    pairs: list[tuple[str, str, Callable[[int], list[str]], Callable[[int], list[str]]]] = [
        (
            "hello ASGI",
            "uvicorn 0.54 (httptools, uvloop)",
            lambda p: tapster("asgi", "hello_asgi:app", p),
            lambda p: uvicorn("hello_asgi:app", p),
        ),
        (
            "hello ASGI",
            "granian 2.8.7 (Rust)",
            lambda p: tapster("asgi", "hello_asgi:app", p),
            lambda p: granian("asgi", "hello_asgi:app", p),
        ),
        (
            "Starlette JSON",
            "uvicorn 0.54 (httptools, uvloop)",
            lambda p: tapster("asgi", "star:app", p),
            lambda p: uvicorn("star:app", p),
        ),
        (
            "Starlette JSON",
            "granian 2.8.7 (Rust)",
            lambda p: tapster("asgi", "star:app", p),
            lambda p: granian("asgi", "star:app", p),
        ),
        (
            "hello WSGI",
            "gunicorn gthread (1 worker, 10 threads)",
            lambda p: tapster("wsgi", "hello_wsgi:app", p),
            lambda p: gunicorn("hello_wsgi:app", p),
        ),
        (
            "hello WSGI",
            "granian 2.8.7 (Rust)",
            lambda p: tapster("wsgi", "hello_wsgi:app", p),
            lambda p: granian("wsgi", "hello_wsgi:app", p),
        ),
    ]
    for label, peer, ours, theirs in pairs:
        path = "/items/7" if "Starlette" in label else "/"
        tap_port, peer_port = free_port(), free_port()
        with (
            start_server(
                ours(tap_port), port=tap_port, env=env, cwd=folder, probe=http_probe(path)
            ) as tap,
            start_server(
                theirs(peer_port), port=peer_port, env=env, cwd=folder, probe=http_probe(path)
            ) as other,
        ):

            def load(server: Server, url: str) -> dict[str, float]:
                return run_wrk(url, connections=50, duration=duration)

            yield Comparison(
                f"{label}: tapster vs {peer}",
                (REQUESTS_PER_S, P99_MS),
                tapster=lambda u=f"{tap.url}{path}", s=tap: load(s, u),
                twistd=lambda u=f"{other.url}{path}", s=other: load(s, u),
                note="wrk -c 50 -t 1, keep-alive; second column: " + peer,
            )

    def echo(server: Server, port: int) -> dict[str, float]:
        before = server.cpu_seconds()
        done = subprocess.run(
            [
                str(ctx.tapster_python),
                str(folder / "ws_load.py"),
                str(port),
                "20",
                str(duration),
            ],
            capture_output=True,
            text=True,
            timeout=duration + 30,
            check=True,
        )
        used = server.cpu_seconds() - before
        rate, total = (float(word) for word in done.stdout.split())
        return {
            "messages_per_s": rate,
            "messages_per_cpu_s": total / used if used > 0 else 0.0,
        }

    tap_port = free_port()
    with start_server(
        tapster("asgi", "hello_asgi:app", tap_port),
        port=tap_port,
        env=env,
        cwd=folder,
        probe=http_probe("/"),
    ) as tap:
        # uvicorn's two current WebSocket implementations: wsproto, and websockets' sans-IO
        # layer (what its ``--ws auto`` picks when websockets is installed, as tapster's).
        for ws in ("wsproto", "websockets-sansio"):
            peer_port = free_port()
            with start_server(
                uvicorn("hello_asgi:app", peer_port, ws=ws),
                port=peer_port,
                env=env,
                cwd=folder,
                probe=http_probe("/"),
            ) as other:
                yield Comparison(
                    f"WebSocket echo: tapster vs uvicorn 0.54 ({ws})",
                    (MESSAGES_PER_S, MESSAGES_PER_CPU_S),
                    tapster=lambda: echo(tap, tap_port),
                    twistd=lambda o=other, p=peer_port: echo(o, p),
                    note="20 sockets, 32-byte text, one in flight each; second column: uvicorn",
                )


CASE = Case(
    name="apps",
    issue=19,
    title="tapster web running ASGI and WSGI applications vs uvicorn, granian, gunicorn",
    description="hello-world ASGI and WSGI, a Starlette JSON route and WebSocket echo; "
    "one process each, wrk -c 50",
    comparisons=comparisons,
    runs=3,
    warmup=1,
    default=False,
)
