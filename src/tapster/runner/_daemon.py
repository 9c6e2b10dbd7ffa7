"""Becoming a daemon: double fork, ``setsid``, and a readiness pipe back to the launcher.

The launching process must not say "started" before the service listens, nor
return 0 for a service that failed to bind. So it forks, keeps the read end of
a pipe, and waits: the daemon (the grandchild, in its own session, with no
controlling terminal) writes ``OK`` once the tree is started and listening, or
``ERR <one line>`` when start-up fails. End of file without a report means the
daemon died before it could say anything.

Resource handling: the write end is non-inheritable, so programs the service
spawns later cannot hold the launcher open. :meth:`Readiness.ready` and
:meth:`Readiness.failed` each close it; the first report wins.
"""

from __future__ import annotations

import os
import sys

__all__ = ["DIED", "Readiness", "daemonize", "redirect_stdio"]

#: The launcher's message when the daemon died without a word.
DIED = "the daemon exited during start-up before it reported ready (see its log)"

_OK = b"OK"
_ERR = b"ERR "


class Readiness:
    """The daemon's end of the pipe: report once, ready or failed."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @property
    def pending(self) -> bool:
        """True until a report has been sent."""
        return self._fd is not None

    def ready(self) -> None:
        """The tree is started and listening: let the launcher exit 0."""
        self._send(_OK)

    def failed(self, message: str) -> None:
        """Start-up failed: the launcher prints ``message`` and exits non-zero."""
        line = " ".join(message.split()) or "start-up failed"
        self._send(_ERR + line.encode("utf-8", "replace"))

    def _send(self, data: bytes) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.write(fd, data + b"\n")
        except OSError:
            pass
        finally:
            os.close(fd)


def daemonize(null_fd: int | None = None) -> tuple[int | None, str, Readiness]:
    """Fork into the background.

    Returns ``(None, "", readiness)`` in the daemon. In the original process it
    returns ``(status, message, Readiness(None))`` once the daemon has reported:
    status 0 when ready, 1 with the daemon's message otherwise. The original
    process must then exit without cleaning up what the daemon now owns.
    ``null_fd`` is ``/dev/null`` opened beforehand (a chroot may have none).
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first:
        os.close(write_fd)
        status, message = _wait_for_report(read_fd)
        os.close(read_fd)
        os.waitpid(first, 0)
        return status, message, Readiness(None)
    # Intermediate child: new session, then fork again so the daemon can never
    # reacquire a controlling terminal.
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    redirect_stdio(null_fd)
    return None, "", Readiness(write_fd)


def redirect_stdio(null_fd: int | None = None) -> None:
    """Point stdin, stdout and stderr at ``/dev/null`` (or at ``null_fd``, which is closed)."""
    null = os.open(os.devnull, os.O_RDWR) if null_fd is None else null_fd
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _wait_for_report(fd: int) -> tuple[int, str]:
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not data:
            break
        chunks.append(data)
    report = b"".join(chunks).strip()
    if report == _OK:
        return 0, ""
    if report.startswith(_ERR):
        return 1, report[len(_ERR) :].decode("utf-8", "replace")
    return 1, DIED
