"""The small service the supervisor and life-cycle tests run as ``app.tac``.

An HTTP/1.0 server on 127.0.0.1 whose answer is ``VERSION PID`` (so a test sees
which code and which process answered). ``/sleep/SECONDS`` holds the event loop
that long (another worker accepts meanwhile, or a watchdog sees a stuck loop);
``/hang`` holds it for an hour on a line marked ``HANG-LINE`` (the hung-worker
report names it); ``/leak`` keeps 256 KiB a request. Its build fails while a
file ``fail-build`` exists in the folder, and its listener's ``stop()`` first
holds the loop ``stop_hold`` seconds (connections made meanwhile wait in the
listen queue).
"""

from __future__ import annotations

import socket
from pathlib import Path

_TAC = """\
import os, time
from tapster.internet import TCPServer
from tapster.service import Application

VERSION = VERSION_TEXT
LEAK = []
if os.path.exists("fail-build"):
    raise RuntimeError("the build is broken")

class SlowToStop(TCPServer):
    async def stop(self):
        time.sleep(STOP_HOLD)
        await super().stop()

async def handle(reader, writer):
    line = await reader.readline()
    path = line.split()[1].decode() if len(line.split()) > 1 else "/"
    while (await reader.readline()).strip():
        pass
    if path.startswith("/sleep/"):
        time.sleep(float(path.removeprefix("/sleep/")))
    elif path == "/hang":
        time.sleep(3600)  # HANG-LINE
    elif path == "/leak":
        LEAK.append(bytearray(os.urandom(1)) * (256 * 1024))
    writer.write(f"HTTP/1.0 200 OK\\r\\n\\r\\n{VERSION} {os.getpid()}".encode())
    await writer.drain()
    writer.close()

application = Application("app")
SlowToStop(PORT, handle, interface="127.0.0.1").set_parent(application)
"""


def write_pid_server(folder: Path, port: int, version: str = "v1", stop_hold: float = 0.0) -> Path:
    """Write ``folder/app.tac`` serving on ``port``; its path."""
    text = _TAC.replace("PORT", str(port)).replace("STOP_HOLD", repr(stop_hold))
    tac = folder / "app.tac"
    tac.write_text(text.replace("VERSION_TEXT", repr(version)))
    return tac


def ask(port: int, path: str = "/", timeout: float = 5.0) -> tuple[str, int]:
    """The version and PID of the process that answered ``path``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), data
    version, pid = body.decode().split()
    return version, int(pid)


def ask_pid(port: int, path: str = "/", timeout: float = 5.0) -> int:
    """The PID of the process that answered ``path``."""
    return ask(port, path, timeout)[1]


#: The line of ``app.tac`` whose build fails (while ``fail-build`` exists).
BUILD_FAILS_AT = next(n for n, line in enumerate(_TAC.splitlines(), 1) if "build is broken" in line)
