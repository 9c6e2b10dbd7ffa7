"""User and group ids from names or numbers, checked the same way everywhere.

The runner (``--uid``/``--gid``) and ``Application(uid=..., gid=...)`` both
accept a name or a number; this module is the one place that decides what is a
valid id and how an unknown name is reported. It imports ``pwd``/``grp`` only
when a name must be looked up, so the ``--help`` path stays lean.
"""

from __future__ import annotations

#: uid_t and gid_t are 32 bits; all ones means "no change" to the system calls.
MAX_ID = 2**32 - 2


def _number(value: str, what: str) -> int | None:
    """``value`` as an id if it is written in ASCII digits (None for a name)."""
    if not (value.isascii() and value.isdigit()):
        return None
    if len(value.lstrip("0")) > 10 or int(value) > MAX_ID:
        raise ValueError(f"a {what} number is between 0 and {MAX_ID}")
    return int(value)


def user_id(value: str) -> int:
    """A user name or number as a uid (``ValueError`` for an unknown name)."""
    number = _number(value, "user")
    if number is not None:
        return number
    import pwd

    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise ValueError(f"no user named {value!r} on this system") from None


def group_id(value: str) -> int:
    """A group name or number as a gid (``ValueError`` for an unknown name)."""
    number = _number(value, "group")
    if number is not None:
        return number
    import grp

    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError(f"no group named {value!r} on this system") from None
