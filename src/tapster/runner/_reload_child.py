"""The ``--reload`` child's side: serve on the reloader's listeners, report them and readiness.

The reloader (``runner._reload``) starts the next child before it stops the running
one, so both must serve the same sockets: a second bind of ``tcp:8080`` would fail.
``$TAPSTER_RELOADED`` (JSON) gives the child a channel to the reloader (a unix
``SOCK_SEQPACKET`` socket) and the listeners the previous child bound. Binds take those
(``tapster.endpoints._inherited``, the supervisor's mechanism), a new endpoint is bound
as usual, and the child sends every listener it holds back over the channel (the
descriptors themselves, ``SCM_RIGHTS``), then ``ready`` or ``failed``. The reloader
keeps the sockets open between children and stops the old child only on ``ready``.

Imported only in such a child.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator

from tapster.endpoints._inherited import Listener, inherit, recording

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.endpoints._server import ServerEndpoint
    from tapster.runner._run import Runner
    from tapster.runner._settings import RunSettings

    Bound = list[tuple[ServerEndpoint, list[socket.socket]]]

__all__ = ["MAX_FDS", "RELOADED", "ReloadedRole", "child_spec"]

RELOADED = "TAPSTER_RELOADED"
"""Set in the child's environment: it serves and does not reload itself (JSON, see above)."""
#: Most descriptors one ``listeners`` message carries.
MAX_FDS = 250


def child_spec(channel: int, listeners: list[Listener]) -> str:
    """The value of ``$TAPSTER_RELOADED`` for a child with this channel and these listeners."""
    return json.dumps({"channel": channel, "listeners": listeners})


class ReloadedRole:
    """The runner's role in a ``--reload`` child (see the module docstring)."""

    title = ""
    switches_user = True
    upgraded = False
    #: A developer is watching: a failed start shows its traceback after the one line.
    shows_tracebacks = True

    def __init__(self, channel: int, listeners: list[Listener]) -> None:
        self.channel = socket.socket(fileno=channel)
        self.channel.set_inheritable(False)
        self.listeners = listeners
        self._recording: contextlib.AbstractContextManager[Bound] | None = None
        self._found: Bound = []

    @classmethod
    def from_environment(cls, value: str) -> ReloadedRole:
        """The role ``$TAPSTER_RELOADED`` describes; the variable is removed (for subprocesses)."""
        os.environ.pop(RELOADED, None)
        try:
            data = json.loads(value)
            listeners = [(str(d), [int(fd) for fd in fds]) for d, fds in data["listeners"]]
            return cls(int(data["channel"]), listeners)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            sys.stderr.write(f"tapster: bad ${RELOADED}: {exc}\n")
            raise SystemExit(1) from None

    def adjust(self, settings: RunSettings) -> RunSettings:
        """The settings, unchanged (``--daemon`` and ``--workers`` are refused with --reload)."""
        return settings

    def setup(self, runner: Runner) -> None:
        """Report readiness to the reloader; from now on binds take its listeners.

        Both start here rather than around the tree's ``privileged_start``, so that the
        ``--admin`` endpoint, bound before the tree, is handed on too.
        """
        runner.readiness = _ChannelReadiness(self.channel)  # type: ignore[assignment]
        inherit(self.listeners, bind_missing=True)
        self._recording = recording()
        self._found = self._recording.__enter__()

    @contextlib.contextmanager
    def binding(self) -> Iterator[None]:
        """Bind (mostly: take the inherited sockets), then send them all to the reloader."""
        yield
        assert self._recording is not None
        self._recording.__exit__(None, None, None)
        described: list[tuple[str, int]] = []
        fds: list[int] = []
        for endpoint, sockets in self._found:
            disown = getattr(endpoint, "disown", None)
            if disown is not None:
                disown()  # a unix socket's file outlives this child: the next one serves it
            described.append((endpoint.description, len(sockets)))
            fds.extend(sock.fileno() for sock in sockets)
        if len(fds) <= MAX_FDS:
            with contextlib.suppress(OSError):
                socket.send_fds(self.channel, [json.dumps(described).encode()], fds)

    def loop_started(self, runner: Runner) -> None:
        """Nothing to start."""

    def serve(self, runner: Runner) -> int:
        """Serve the tree until it stops."""
        return runner.serve()


class _ChannelReadiness:
    """The runner's readiness report, sent to the reloader instead of a daemon's pipe."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self.pending = True

    def ready(self) -> None:
        """The tree listens: the reloader may stop the previous child."""
        if self.pending:
            self.pending = False
            with contextlib.suppress(OSError):
                self._channel.send(b"ready")

    def failed(self, message: str) -> None:
        """Start-up failed: said here, on the terminal; the reloader keeps the previous child."""
        if self.pending:
            self.pending = False
            sys.stderr.write(f"tapster: {' '.join(message.split())}\n")
            sys.stderr.flush()
            with contextlib.suppress(OSError):
                self._channel.send(b"failed")
