"""Users, groups, ``chroot`` and ``umask``: giving up what the process no longer needs.

Names are resolved while the command line is parsed (an unknown user is a
usage error, not a traceback at start-up). The switch itself runs after every
service bound its sockets: supplementary groups and gid first (changing them
needs the privileges the uid change gives up), then the uid.
"""

from __future__ import annotations

import os

from tapster._ids import group_id, user_id

__all__ = ["PrivilegeError", "enter_chroot", "group_id", "switch_user", "user_id"]


class PrivilegeError(Exception):
    """The system refused a privilege change; the message says which and why."""


def primary_group(uid: int) -> int | None:
    """The login group of ``uid``, if the user database knows it."""
    import pwd  # here: the runner's options import this module, --help needs no pwd

    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None


def _user_name(uid: int) -> str | None:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def switch_user(uid: int | None, gid: int | None, effective_only: bool = False) -> None:
    """Become ``uid``/``gid``: supplementary groups, then gid, then uid.

    With ``effective_only`` only the effective ids change, so the real ids
    (usually root) stay and could be regained; this is ``--euid``.
    """
    if uid is None and gid is None:
        return
    if gid is None and uid is not None:
        gid = primary_group(uid)
    name = _user_name(uid) if uid is not None else None
    if gid is not None and (gid != os.getegid() or os.geteuid() == 0):
        try:
            if os.geteuid() == 0 and not effective_only:
                if name is not None:
                    os.initgroups(name, gid)
                else:
                    os.setgroups([gid])
            if effective_only:
                os.setegid(gid)
            else:
                os.setgid(gid)
        except PermissionError:
            raise PrivilegeError(
                f"cannot switch to group {gid}: operation not permitted "
                "(start as root, or drop --gid)"
            ) from None
        except OSError as exc:
            raise PrivilegeError(f"cannot switch to group {gid}: {_reason(exc)}") from None
    if uid is not None and uid != os.geteuid():
        who = f"user {name} (uid {uid})" if name else f"uid {uid}"
        try:
            if effective_only:
                os.seteuid(uid)
            else:
                os.setuid(uid)
        except PermissionError:
            raise PrivilegeError(
                f"cannot switch to {who}: operation not permitted (start as root, or drop --uid)"
            ) from None
        except OSError as exc:
            raise PrivilegeError(f"cannot switch to {who}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def enter_chroot(path: str) -> None:
    """``chroot`` into ``path`` and stand at its root."""
    try:
        os.chroot(path)
    except PermissionError:
        raise PrivilegeError(
            f"cannot chroot to {path}: operation not permitted (needs root)"
        ) from None
    except OSError as exc:
        raise PrivilegeError(f"cannot chroot to {path}: {exc.strerror}") from None
    os.chdir("/")
