"""Headless Chromium for the tests, driven over the DevTools protocol.

Commands and events (:class:`DevTools`) over the ``websockets`` library's
synchronous client, and :func:`launch` (a private profile, stopped when the
``with`` ends). The ``chromium`` fixture in ``conftest.py`` uses them; the
browser tests (``web``'s listing, the admin status page) share them.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import support
from websockets.sync.client import ClientConnection, connect


class DevTools:
    """Commands and events over one browser-level DevTools connection.

    Each reply or event is one JSON text message; a reply is matched to its
    command by ``id``, and events that arrive meanwhile are kept for
    :meth:`wait_event`. A command gets ``timeout`` seconds for its reply.
    """

    def __init__(self, ws: ClientConnection, timeout: float = 30.0) -> None:
        self.ws = ws
        self.timeout = timeout
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv(timeout=self.timeout))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                params = event.get("params", {})
                if event.get("method") == method and all(
                    params.get(k) == v for k, v in match.items()
                ):
                    del self.events[: i + 1]
                    return params
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {method} event within {timeout}s")
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                raise TimeoutError(f"no {method} event within {timeout}s") from None

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return result["result"].get("value")


def find_chromium() -> str | None:
    """The Chromium executable, installed first (Debian package) if it is missing."""
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or support.ensure_tool("chromium", "chromium")
    )


@contextmanager
def launch(binary: str, profile: Path) -> Iterator[DevTools]:
    """A headless Chromium with its profile in ``profile``, stopped when the ``with`` ends."""
    profile.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        # Our own socket: no proxy from the environment between us and the browser.
        # No size limit: a page's state can be large.
        sock = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        with connect(
            f"ws://127.0.0.1:{port}{path}", sock=sock, compression=None, max_size=None
        ) as ws:
            yield DevTools(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
