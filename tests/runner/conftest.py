"""Fixtures for the runner tests: a project folder in the seed's MyProject layout.

``project`` is a temporary folder holding ``myproject/__init__.py`` (a tiny TCP
echo service that binds in ``privileged_start``) and
``tapster/plugins/myproject_plugin.py`` (its service maker, tapname
``myproject``); tests run ``tapster`` with that folder as the working
directory, as a developer would.
"""

from __future__ import annotations

import socket
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ECHO_PACKAGE = '''
"""A tiny echo service for the runner tests."""

import asyncio
import logging
import os
import socket

from tapster.service import Service

log = logging.getLogger("tapster.test.myproject")


class EchoService(Service):
    def __init__(self, port, host="127.0.0.1", ticks=0.0, fail=""):
        super().__init__()
        self.port = port
        self.host = host
        self.ticks = ticks
        self.fail = fail
        self.sock = None
        self.server = None
        self.ticker = None

    def privileged_start(self):
        if self.fail == "bind-error":
            raise ValueError("refusing to bind: the test said so")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.setblocking(False)
        self.sock = sock

    def release_privileged(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def start(self):
        if self.fail == "start-error":
            raise RuntimeError("start failed on purpose")
        if self.fail == "die":
            os._exit(7)

        async def echo(reader, writer):
            data = await reader.readline()
            if data.strip() == b"whoami":
                data = f"{os.getuid()} {os.getgid()} {os.getpid()}\\n".encode()
            elif data.strip() == b"loop":
                loop = asyncio.get_running_loop()
                data = f"{type(loop).__module__}.{type(loop).__name__}\\n".encode()
            writer.write(data)
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(echo, sock=self.sock)
        if self.ticks:
            self.ticker = asyncio.ensure_future(self._tick())

    async def _tick(self):
        number = 0
        while True:
            log.info("tick %d", number)
            number += 1
            await asyncio.sleep(self.ticks)

    async def stop(self):
        if self.ticker is not None:
            self.ticker.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        log.info("echo stopped")

    def listening(self):
        return [f"tcp:{self.host}:{self.port}"]
'''

PLUGIN = """
from tapster.service import ServiceMaker
from tapster.usage import Options, port


class MyOptions(Options):
    parameters = [
        ("port", "p", 1235, "The port number to listen on.", port),
        ("ticks", None, 0.0, "Log a line every TICKS seconds.", float),
        ("fail", None, "", "Fail on purpose: bind-error, start-error, die."),
    ]


class MyServiceMaker(ServiceMaker):
    tapname = "myproject"
    description = "Run this! It'll make your dog happy."
    options = MyOptions

    def make_service(self, options):
        from myproject import EchoService

        if options["fail"] == "make-error":
            raise ValueError("the configuration is wrong on purpose")
        return EchoService(options["port"], ticks=options["ticks"], fail=options["fail"])


service_maker = MyServiceMaker()
"""

LOOPS = """
import asyncio
import sys


class MarkedLoop(asyncio.SelectorEventLoop):
    pass


def make():
    sys.stderr.write("custom loop made\\n")
    return MarkedLoop()


def not_a_loop():
    return 42
"""


def write_project(root: Path) -> Path:
    """Write the MyProject layout under ``root`` and return ``root``."""
    (root / "myproject").mkdir(parents=True, exist_ok=True)
    (root / "myproject" / "__init__.py").write_text(textwrap.dedent(ECHO_PACKAGE))
    plugins = root / "tapster" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "myproject_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (root / "myproject" / "loops.py").write_text(textwrap.dedent(LOOPS))
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the ``myproject`` plugin, to use as the cwd."""
    return write_project(tmp_path / "MyProject")


def _wait_listening(proc: subprocess.Popen[str], port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"exited with status {proc.returncode} before listening:\n{err}")
        try:
            # A round trip, not just a connect: the echo service listens from
            # privileged_start on, but answers only once start() ran.
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.settimeout(timeout)
                conn.sendall(b"ping\n")
                if conn.makefile("rb").readline() == b"ping\n":
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.02)


@pytest.fixture
def wait_listening() -> Callable[..., None]:
    """``wait_listening(proc, port)``: wait for the port; fail at once if ``proc`` exits."""
    return _wait_listening
