"""ASGI applications the ASGI tests serve, written out as modules for ``tapster web --asgi``.

Each constant is the source of one module; ``write_apps(folder)`` puts them all in
``folder`` (the test's ``cwd``, which ``--asgi`` searches like ``--app-dir``).
"""

from __future__ import annotations

from pathlib import Path

PLAIN = r"""
import asyncio, json, os

MARKS = os.environ.get("MARKS", ".")


def mark(name, text=""):
    with open(os.path.join(MARKS, name), "a") as f:
        f.write(text + "\n")


async def read_body(receive):
    body = b""
    while True:
        m = await receive()
        if m["type"] == "http.disconnect":
            raise ConnectionError("gone")
        body += m.get("body", b"")
        if not m.get("more_body"):
            return body


async def respond(send, status, body, headers=((b"content-type", b"text/plain"),)):
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                if os.environ.get("FAIL_STARTUP"):
                    await send({"type": "lifespan.startup.failed",
                                "message": "Traceback...\nRuntimeError: no database"})
                    return
                scope["state"]["started"] = "yes"
                if os.environ.get("SLOW_STARTUP"):
                    await asyncio.sleep(float(os.environ["SLOW_STARTUP"]))
                mark("startup")
                await send({"type": "lifespan.startup.complete"})
            else:
                mark("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        return await websocket(scope, receive, send)
    path = scope["path"]
    if path.endswith("/scope"):
        body = await read_body(receive)
        shown = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string")}
        shown["raw_path"] = scope["raw_path"].decode("latin-1")
        shown["query_string"] = scope["query_string"].decode("latin-1")
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        shown["body_length"] = len(body)
        json_type = [(b"content-type", b"application/json")]
        await respond(send, 200, json.dumps(shown).encode(), json_type)
    elif path == "/echo":
        await respond(send, 200, await read_body(receive))
    elif path == "/slow-upload":
        # Takes one part of the body, then waits: the client must be held back.
        first = await receive()
        mark("first-part", str(len(first.get("body", b""))))
        await asyncio.sleep(30)
    elif path == "/count-upload":
        total, parts = 0, 0
        while True:
            m = await receive()
            total += len(m.get("body", b""))
            parts += 1
            if not m.get("more_body"):
                break
        await respond(send, 200, f"{total} {parts}".encode())
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d\n" % i, "more_body": True})
            await asyncio.sleep(0.3)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/endless":
        # Streams until the client goes: the server must hold it back, then tell it.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk, sent = b"x" * 65536, 0
        try:
            while True:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += 1
                if sent % 16 == 0:
                    with open(os.path.join(MARKS, "endless-sent"), "w") as f:
                        f.write(str(sent))
        except OSError:
            mark("endless-disconnected", str(sent))
    elif path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        m = await receive()
        while m["type"] != "http.disconnect":
            m = await receive()
        mark("disconnect", m["type"])
    elif path == "/raise-before":
        raise RuntimeError("boom before start")
    elif path == "/raise-after-start":
        # Nothing went out yet (the head waits for the first body part): a 500.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom before the body")
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after start")
    elif path == "/body-first":
        await send({"type": "http.response.body", "body": b"no start"})
    elif path == "/no-answer":
        return
    elif path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"with trailers"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")],
                    "more_trailers": False})
    elif path == "/sleep":
        await asyncio.sleep(float(scope["query_string"] or b"1"))
        await respond(send, 200, b"slept")
    elif path == "/bad-header":
        await respond(send, 200, b"x", [(b"x-evil", b"a\r\nSet-Cookie: 1")])
    elif path == "/headers":
        # Headers from the query: "list..." as [name, value] lists, "close..." adds
        # Connection: close, "evil..." a header with a line break.
        value = scope["query_string"]
        pairs = [(b"x-echo", value), (b"content-type", b"text/plain")]
        if value.startswith(b"list"):
            pairs = [list(p) for p in pairs]
        if value.startswith(b"close"):
            pairs.append((b"connection", b"close"))
        if value.startswith(b"evil"):
            pairs.append((b"x-evil", b"a\r\nb"))
        await respond(send, 200, value, pairs)
    else:
        await respond(send, 200, b"Hello, world!")


async def websocket(scope, receive, send):
    path = scope["path"]
    assert (await receive())["type"] == "websocket.connect"
    if path == "/ws/refuse":
        await send({"type": "websocket.close", "code": 1000})
        return
    if path == "/ws/proto":
        await send({"type": "websocket.accept", "subprotocol": scope["subprotocols"][-1]})
        await send({"type": "websocket.send", "text": ",".join(scope["subprotocols"])})
        await send({"type": "websocket.close", "code": 4001, "reason": "done"})
        return
    await send({"type": "websocket.accept"})
    if path == "/ws/slow":
        # Takes nothing for a while: a flood must be held back by the server.
        await asyncio.sleep(3)
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            mark("ws-disconnect", str(m["code"]))
            return
        if m.get("text") is not None:
            await send({"type": "websocket.send", "text": m["text"]})
        else:
            await send({"type": "websocket.send", "bytes": m["bytes"]})
"""

NO_LIFESPAN = r"""
async def app(scope, receive, send):
    assert scope["type"] == "http", "only HTTP here"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no lifespan"})
"""

STARLETTE = r"""
import asyncio, contextlib, os
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute

MARKS = os.environ.get("MARKS", ".")


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"db": "connected"}
    with open(os.path.join(MARKS, "starlette-shutdown"), "w") as f:
        f.write("bye")


async def home(request):
    return JSONResponse({"db": request.state.db, "path": request.url.path,
                         "root_path": request.scope["root_path"]})


async def items(request):
    return PlainTextResponse(f"item {request.path_params['n']}")


async def stream(request):
    async def parts():
        for i in range(3):
            yield f"chunk {i}\n"
            await asyncio.sleep(0.05)
    return StreamingResponse(parts(), media_type="text/plain")


def write_mark(text):
    with open(os.path.join(MARKS, "background"), "w") as f:
        f.write(text)


async def later(request):
    body = await request.body()
    return PlainTextResponse("accepted", background=BackgroundTask(write_mark, body.decode()))


async def echo(websocket):
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text.upper())


app = Starlette(
    routes=[
        Route("/", home),
        Route("/items/{n:int}", items),
        Route("/stream", stream),
        Route("/later", later, methods=["POST"]),
        WebSocketRoute("/ws", echo),
    ],
    lifespan=lifespan,
)
"""


PATHSEND = r"""
import os
from starlette.responses import FileResponse

FILES = os.environ.get("FILES", ".")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path, query = scope["path"], scope["query_string"].decode()
    if path == "/extensions":
        body = repr(sorted(scope.get("extensions", {}))).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    elif path == "/starlette":
        # A real framework's file response: it uses the extension when offered.
        await FileResponse(os.path.join(FILES, query))(scope, receive, send)
    elif path == "/raw":
        # The file named by the query string, relative to FILES unless absolute;
        # no Content-Length (the server adds it) unless ?declare=N.
        name, _, declare = query.partition("&declare=")
        headers = [(b"content-type", b"application/octet-stream")]
        if declare:
            headers.append((b"content-length", declare.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        target = name if name.startswith("/") else os.path.join(FILES, name)
        await send({"type": "http.response.pathsend", "path": target})
    elif path == "/not-a-string":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": FILES.encode()})
    elif path == "/before-start":
        await send({"type": "http.response.pathsend", "path": os.path.join(FILES, "small.txt")})
    elif path == "/after-body":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"begun", "more_body": True})
        await send({"type": "http.response.pathsend", "path": os.path.join(FILES, "small.txt")})
"""


def write_apps(folder: Path) -> Path:
    """Write every application module into ``folder`` (and a ``marks`` folder); return it."""
    (folder / "plainapp.py").write_text(PLAIN)
    (folder / "nolifespan.py").write_text(NO_LIFESPAN)
    (folder / "starletteapp.py").write_text(STARLETTE)
    (folder / "pathsendapp.py").write_text(PATHSEND)
    (folder / "marks").mkdir(exist_ok=True)
    return folder
