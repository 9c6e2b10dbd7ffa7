"""The root of a service tree, as the runner sees it."""

from __future__ import annotations

from tapster._ids import group_id, user_id
from tapster.service._service import MultiService


class Application(MultiService):
    """The root service the runner runs.

    ``name`` is the process name (shown by ``ps`` when setproctitle is
    installed); ``uid`` and ``gid``, when given, are what the runner switches
    to after ``privileged_start`` has bound the sockets. Each may be a number
    or a name (``uid="www-data"``), resolved here as ``--uid``/``--gid`` are, so
    an unknown name fails where the ``.tac`` file says it.
    """

    def __init__(
        self, name: str, uid: int | str | None = None, gid: int | str | None = None
    ) -> None:
        super().__init__()
        if not name:
            raise ValueError("an Application needs a non-empty name")
        self.name = name
        self.uid: int | None = _resolve(uid, "user")
        self.gid: int | None = _resolve(gid, "group")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Application {self.name!r} {state}, {len(self)} services>"


def _resolve(value: int | str | None, what: str) -> int | None:
    """A uid or gid from a number or a name; ``ValueError``/``TypeError`` say what is wrong."""
    keyword = "uid" if what == "user" else "gid"
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(
            f"Application {keyword} must be a {what} name or number, not {type(value).__name__}"
        )
    try:
        return (user_id if what == "user" else group_id)(str(value))
    except ValueError as exc:
        raise ValueError(f"Application {keyword}={value!r}: {exc}") from None
