"""``sd_notify`` without a dependency: what systemd is told, and the watchdog pings.

The protocol is one datagram of ``KEY=VALUE`` lines sent to the UNIX socket named
by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Nothing is
sent, and nothing fails, when the variable is absent. Only the main process
talks to systemd (the single process, or the supervisor: workers never see the
variable), so the default ``NotifyAccess=main`` is enough.

:class:`Notifier` sends the life-cycle messages (``READY=1``, ``RELOADING=1``
with ``MONOTONIC_USEC=``, ``STOPPING=1``, ``STATUS=``, ``EXTEND_TIMEOUT_USEC=``,
``MAINPID=``); :class:`Watchdog` sends ``WATCHDOG=1`` at half of
``$WATCHDOG_USEC`` from a callback on the event loop, and only while a health
check passes: a blocked loop, or a stuck worker, sends nothing, and systemd's
``WatchdogSec=`` restarts the service.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["Notifier", "Watchdog", "notify"]


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; return whether it was sent."""
    return Notifier(environ).send(state)


def _target(environ: Mapping[str, str]) -> str | None:
    address = environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return None
    return "\0" + address[1:] if address[0] == "@" else address


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """``$WATCHDOG_USEC`` in seconds, when it is meant for this process (``$WATCHDOG_PID``)."""
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


class Notifier:
    """Tells systemd what this process does; silent without ``$NOTIFY_SOCKET``.

    Sends never block: a datagram that does not fit in the manager's queue
    right now is dropped rather than holding the event loop.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.target = _target(env)
        #: Seconds of ``WatchdogSec=`` (``$WATCHDOG_USEC``), None without a watchdog.
        self.watchdog = _watchdog_seconds(env) if self.target is not None else None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """Whether systemd listens (``$NOTIFY_SOCKET`` is set and usable)."""
        return self.target is not None

    def send(self, *lines: str) -> bool:
        """Send ``lines`` as one notification; return whether it was sent."""
        if self.target is None or not lines:
            return False
        data = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto(data, self.target)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        """Started, or a reload ended: ``READY=1`` with a status and the main PID."""
        return self.send("READY=1", _status(status), f"MAINPID={os.getpid()}")

    def reloading(self, status: str) -> bool:
        """A reload begins (``Type=notify-reload``): ``RELOADING=1`` with the monotonic time."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", _status(status))

    def stopping(self, status: str) -> bool:
        """A graceful stop begins."""
        return self.send("STOPPING=1", _status(status))

    def status(self, status: str) -> bool:
        """A one-line human summary (``systemctl status`` shows it)."""
        return self.send(_status(status))

    def extend_timeout(self, seconds: float) -> bool:
        """Still making progress: allow ``seconds`` more for the start or stop under way."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1e6))}")

    def main_pid(self) -> bool:
        """This process is the main one (after an upgrade re-executed it)."""
        return self.send(f"MAINPID={os.getpid()}")

    def close(self) -> None:
        """Release the socket (it is opened again on the next send)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _status(text: str) -> str:
    return "STATUS=" + " ".join(text.split())


class Watchdog:
    """``WATCHDOG=1`` every half ``WatchdogSec=``, from the loop, while ``healthy()`` holds.

    The ping is a ``call_later`` callback, not a thread: a loop that is
    blocked sends nothing, which is the point.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        notifier: Notifier,
        healthy: Callable[[], bool] | None = None,
    ) -> None:
        self._loop = loop
        self._notifier = notifier
        self._healthy = healthy
        self._handle: asyncio.TimerHandle | None = None

    @property
    def interval(self) -> float | None:
        """Seconds between pings, None when systemd asked for none."""
        seconds = self._notifier.watchdog
        return seconds / 2 if seconds else None

    def start(self) -> None:
        """Ping now (when healthy), then every interval."""
        if self.interval is not None and self._handle is None:
            self._ping()

    def _ping(self) -> None:
        interval = self.interval
        assert interval is not None
        try:
            healthy = self._healthy is None or bool(self._healthy())
        except Exception:
            healthy = False  # a check that fails is no proof of health
        if healthy:
            self._notifier.send("WATCHDOG=1")
        self._handle = self._loop.call_later(interval, self._ping)

    def stop(self) -> None:
        """No more pings."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
