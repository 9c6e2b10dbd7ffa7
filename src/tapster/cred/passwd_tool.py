"""``tapster-passwd FILE USER``: add, change or delete a user in a password file.

The password is read from the terminal (asked twice) or, when stdin is not
a terminal or ``--stdin`` is given, from the first line of stdin; never from
the command line, where other users could read it. The file is rewritten
atomically (a temporary file in the same folder, then a rename), keeping
every other line, comments included, as it was; a new file gets mode 0600,
an existing one keeps its owner and mode, less access for other users. Only
a regular file is rewritten (through symbolic links): a device, pipe or
socket is refused and left alone. The result works with ``--auth file:FILE``;
with ``--scheme bcrypt`` also with ``--auth htpasswd:FILE`` and Apache.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from tapster.cred import hashing
from tapster.cred._files import check_password_file, read_password_file, real_path
from tapster.cred.credentials import from_command_line, text, to_bytes

__all__ = ["main"]

PROG = "tapster-passwd"


class ToolError(Exception):
    """A problem to report on one line and exit 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line plus a pointer to ``--help`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}\nRun '{PROG} --help' for usage.\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Add, change or delete a user in a tapster password file "
        "(for --auth file:FILE). The password is read from the terminal or stdin.",
    )
    parser.add_argument("file", metavar="FILE", help="the password file (created if missing)")
    parser.add_argument("user", metavar="USER", help="the user to add, change or delete")
    parser.add_argument("-d", "--delete", action="store_true", help="delete USER")
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read the password from the first line of stdin even on a terminal",
    )
    parser.add_argument(
        "--scheme",
        choices=hashing.HASH_SCHEMES,
        default=hashing.DEFAULT_SCHEME,
        help="hash scheme (default: %(default)s; bcrypt for Apache compatibility)",
    )
    return parser


def _check_user(user: str) -> None:
    if not user:
        raise ToolError("the user name is empty")
    if ":" in user or any(ord(ch) < 32 or ord(ch) == 127 for ch in user):
        raise ToolError("a user name cannot contain ':' or control characters")
    if user.startswith("#") or user != user.strip():
        raise ToolError("a user name cannot start with '#' or with or end in spaces")


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.buffer.readline()
        password = text(line.rstrip(b"\r\n"))
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise ToolError("the passwords do not match; nothing changed")
        password = from_command_line(password)
    if not password:
        raise ToolError("empty password refused; nothing changed")
    return password


def _write_atomically(path: Path, data: bytes, old_stat: os.stat_result | None) -> None:
    """Replace the regular file ``path`` (no link: see :func:`real_path`) by ``data``.

    A new file gets mode 0600; an existing one keeps its owner and group (when
    run as root) and its mode, less any access for other users.
    """
    folder = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        mode = 0o600 if old_stat is None else stat.S_IMODE(old_stat.st_mode) & 0o770 | 0o600
        if old_stat is not None and os.geteuid() == 0:
            os.fchown(fd, old_stat.st_uid, old_stat.st_gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_existing(path: Path) -> tuple[bytes, os.stat_result | None]:
    """The current content and status of the password file, or nothing if it is missing.

    Only a regular file qualifies: a device, pipe or socket is refused (and
    left alone) instead of being read or replaced.
    """
    try:
        return read_password_file(path)
    except FileNotFoundError:
        return b"", None


def update_file(path: Path, user: str, new_hash: str | None) -> str:
    """Set (or, with ``new_hash=None``, delete) ``user``'s line; return what was done.

    ``path`` may be a symbolic link: the file it leads to is the one rewritten,
    and the link stays.
    """
    target = real_path(path)
    data, old_stat = _read_existing(target)
    lines = data.splitlines(keepends=True)
    key = to_bytes(user) + b":"
    kept: list[bytes] = []
    found = False
    for line in lines:
        if line.startswith(key):
            if new_hash is not None and not found:
                kept.append(key + new_hash.encode("ascii") + b"\n")
            found = True
            continue
        kept.append(line if line.endswith(b"\n") else line + b"\n")
    if new_hash is None:
        if not found:
            raise ToolError(f"no user {user!r} in {path}; nothing changed")
        action = "deleted"
    else:
        if not found:
            kept.append(key + new_hash.encode("ascii") + b"\n")
        action = "changed" if found else "added"
    _write_atomically(target, b"".join(kept), old_stat)
    return action


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tapster-passwd``; return the exit status (0 ok, 1 failure, 2 usage)."""
    args = _parser().parse_args(argv)
    path = Path(args.file)
    user = from_command_line(args.user)
    try:
        _check_user(user)
        if not path.parent.is_dir():
            raise ToolError(f"no such folder: {path.parent}")
        target = real_path(path)  # a symbolic link: rewrite the file it leads to
        if target.is_dir():
            raise ToolError(f"{path} is a directory")
        if not target.parent.is_dir():
            raise ToolError(f"{path} is a link to {target}, whose folder does not exist")
        with contextlib.suppress(FileNotFoundError):
            check_password_file(target)  # refuse a device or pipe before asking for a password
        new_hash = None
        if not args.delete:
            new_hash = hashing.hash_password(_read_password(args.stdin), args.scheme)
        action = update_file(path, user, new_hash)
    except ToolError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"{PROG}: cannot update {path}: {reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing changed", file=sys.stderr)
        return 1
    print(f"{PROG}: {action} user {user!r} in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
