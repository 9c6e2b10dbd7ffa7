"""Fixtures for the web tests: a real ``tapster web`` to send HTTP requests to.

``serve(*args)`` starts ``tapster web ARGS`` as a subprocess listening on a
free 127.0.0.1 port and returns a ``Web`` handle; the process is stopped when
the test ends. Until the runner exists in this checkout, the same arguments
are parsed by the plugin's own options class and served in-process on a
background event loop, so the tests stay the same either way.
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import free_port, wait_for_port

USE_SUBPROCESS = (
    importlib.util.find_spec("tapster.runner") is not None
    and os.environ.get("TAPSTER_WEB_TESTS_INPROCESS") != "1"
)


@dataclass
class Web:
    """A running web server under test."""

    port: int
    proc: Any = None
    stopper: Callable[[], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def conn(self, timeout: float = 10.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        body: bytes | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a fresh connection: (status, headers, body)."""
        c = self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes, then read until the server closes (or timeout)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            chunks = []
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except TimeoutError:
                pass
            return b"".join(chunks)


def _start_in_process(args: list[str], port: int) -> Web:
    from tapster.web._options import WebOptions, config_from_options
    from tapster.web._server import WebServer

    options = WebOptions()
    options.parse_options(args)
    portal = None
    checkers = options.get("cred_checkers") or []
    if checkers:
        from tapster.cred import Portal
        from tapster.web._auth import WebRealm

        portal = Portal(WebRealm(), checkers)
    server = WebServer(config_from_options(options, portal))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        srv = await loop.create_server(server.protocol, "127.0.0.1", port)
        server.start()
        holder["srv"] = srv
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        async def shutdown() -> None:
            holder["srv"].close()
            try:
                await asyncio.wait_for(server.drain(), 5)
            except TimeoutError:
                server.abort_all()
            await server.close()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return Web(port=port, stopper=stop)


@pytest.fixture
def serve(tapster_proc: Any) -> Iterator[Callable[..., Web]]:
    """Start ``tapster web ARGS`` on a free port (``--listen`` is added)."""
    started: list[Web] = []

    def start(*args: str, cwd: str | Path | None = None, env: dict[str, str] | None = None) -> Web:
        port = free_port()
        argv = ["--listen", f"tcp:{port}:interface=127.0.0.1", *args]
        if USE_SUBPROCESS:
            proc = tapster_proc.start("web", *argv, cwd=cwd, env=env)
            try:
                wait_for_port(port, timeout=15)
            except TimeoutError:
                proc.kill()
                _out, err = proc.communicate()
                raise AssertionError(f"tapster web did not start: {err}") from None
            web = Web(port=port, proc=proc)
        else:
            web = _start_in_process(argv, port)
        started.append(web)
        return web

    yield start
    for web in started:
        if web.stopper is not None:
            web.stopper()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder with files of the sizes and kinds the tests need."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "hello.txt").write_text("hello world\n" * 100)
    (root / "one.bin").write_bytes(os.urandom(1024))
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "index-less").mkdir()
    (root / "index-less" / "a.txt").write_text("a")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs home</h1>")
    (root / "style.css").write_text("body { color: red; }\n" * 50)
    (root / "data.json").write_text('{"x": 1}')
    return root
