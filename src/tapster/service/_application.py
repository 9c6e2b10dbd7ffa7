"""The root of a service tree, as the runner sees it."""

from __future__ import annotations

from tapster.service._service import MultiService


class Application(MultiService):
    """The root service the runner runs.

    ``name`` is the process name (shown by ``ps`` when setproctitle is
    installed); ``uid`` and ``gid``, when given, are what the runner switches
    to after ``privileged_start`` has bound the sockets.
    """

    def __init__(self, name: str, uid: int | None = None, gid: int | None = None) -> None:
        super().__init__()
        if not name:
            raise ValueError("an Application needs a non-empty name")
        self.name = name
        self.uid = uid
        self.gid = gid

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Application {self.name!r} {state}, {len(self)} services>"
