"""Fixtures for the web tests: a real ``tapster web`` to send HTTP requests to.

``serve(*args)`` starts ``tapster web ARGS`` as a subprocess listening on a
free 127.0.0.1 port and returns a ``Web`` handle; the process is stopped when
the test ends (``tapster_proc``). ``runner=[...]`` puts options before ``web``
(for example ``["--loop", "asyncio"]``).
"""

from __future__ import annotations

import http.client
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import free_port, wait_for_port


@dataclass
class Web:
    """A running web server under test."""

    port: int
    proc: Any = None

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


@pytest.fixture
def serve(tapster_proc: Any) -> Iterator[Callable[..., Web]]:
    """Start ``tapster web ARGS`` on a free port (``--listen`` is added)."""

    def start(
        *args: str,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        runner: tuple[str, ...] | list[str] = (),
    ) -> Web:
        port = free_port()
        argv = ["--listen", f"tcp:{port}:interface=127.0.0.1", *args]
        proc = tapster_proc.start(*runner, "web", *argv, cwd=cwd, env=env)
        deadline = time.monotonic() + 20
        while True:
            try:
                wait_for_port(port, timeout=0.2)
                break
            except TimeoutError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    _out, err = proc.communicate()
                    raise AssertionError(f"tapster web did not start: {err}") from None
        return Web(port=port, proc=proc)

    yield start


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> str:
    """The name of an event loop for ``--loop``: each test runs on both."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return str(request.param)


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
