"""A stream server under the real ``tapster`` command: SIGTERM drains in-flight work."""

from __future__ import annotations

import signal
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

from support import free_port, wait_for_port

PLUGIN = textwrap.dedent(
    """
    import asyncio
    from tapster.internet import StreamServerService
    from tapster.service import ServiceMaker
    from tapster.usage import Options


    class SlowOptions(Options):
        parameters = [["listen", "l", None, "Endpoint."]]


    async def slow_reply(reader, writer):
        line = await reader.readline()
        await asyncio.sleep(0.5)
        writer.write(b"finished " + line)
        await writer.drain()


    class SlowMaker(ServiceMaker):
        tapname = "slowreply"
        description = "Answers each line after half a second."
        options = SlowOptions

        def make_service(self, options):
            return StreamServerService(options["listen"], slow_reply)


    slow = SlowMaker()
    """
)


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path, tapster_proc: Any) -> None:
    plugins = tmp_path / "tapster" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "slowreply_plugin.py").write_text(PLUGIN)
    port = free_port()
    proc = tapster_proc.start(
        "--app-dir", str(tmp_path), "slowreply", "--listen", f"tcp:{port}:interface=127.0.0.1"
    )
    wait_for_port(port, timeout=20)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"job\n")
        time.sleep(0.1)  # the handler is now sleeping on our job
        proc.send_signal(signal.SIGTERM)
        reply = b""
        while chunk := conn.recv(100):
            reply += chunk
    assert reply == b"finished job\n"
    _, errors = proc.communicate(timeout=20)
    assert proc.returncode == 0, errors
    assert "Traceback" not in errors
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        pass
    else:
        raise AssertionError("the port still accepts connections after the process ended")
