"""Opening the files the runner creates, writes or hands to the service user.

The runner runs as root more often than not, and the folders it writes in
(a run directory, a log folder) often belong to the user it switches to. A
mistyped ``--pidfile`` or ``-y`` must not turn into replacing ``/dev/null``,
deleting a device node or reading ``/dev/zero`` until memory runs out, and a
service user must not be able to plant ``tapster.log -> /etc/shadow`` for
the next start as root to hand it over. So every file the runner writes,
replaces, renames, reads as a whole or gives away is opened here, under one
rule:

- the last component of the name is never followed when it is a symbolic
  link (``O_NOFOLLOW``); the name is looked at first (``lstat``, without
  opening it: opening a device can have effects of its own) and anything but
  a regular file is refused with a reason naming what it is;
- a log destination (``streams=True``) may also be a character device
  (``/dev/null`` discards) or a named pipe a process reads: those are
  written to, never created, renamed, rotated or given away;
- a regular file opened for writing must have no other name (a hard link
  may make someone else's file look like the log in the service user's
  folder);
- the open itself is non-blocking, so a named pipe nobody reads or writes
  cannot hang start-up (it is refused instead), and the opened file is
  checked again (the name may have changed in between);
- :func:`hand_over` gives a file to the service user only through the
  descriptor opened here, and only when ``fstat`` says it is a regular file
  with no other name (a hard link to someone else's file stays theirs).

Errors are :class:`NotRegularFileError`, an ``OSError`` whose ``strerror`` is
the reason, so callers that already turn ``OSError`` into one line need
nothing new.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = [
    "NotRegularFileError",
    "describe_kind",
    "hand_over",
    "masked",
    "open_regular",
    "read_regular",
]


class NotRegularFileError(OSError):
    """The path names something other than a regular file (the message says what)."""

    def __init__(self, reason: str, filename: str | None = None) -> None:
        super().__init__(errno.EINVAL, reason, filename)


def describe_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words (``a character device``)."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    )
    for test, words in kinds:
        if test(mode):
            return words
    return "an unknown kind of file"


def _refusal(mode: int, streams: bool = False) -> str:
    kind = describe_kind(mode)
    if stat.S_ISLNK(mode):
        return "it is a symbolic link (refused)"
    wanted = "a regular file, a character device or a named pipe" if streams else "a regular file"
    return f"it is {kind}, not {wanted} (refused)"


def _accepted(mode: int, streams: bool) -> bool:
    if stat.S_ISREG(mode):
        return True
    return streams and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode))


def open_regular(
    path: str,
    flags: int,
    mode: int = 0o644,
    *,
    dir_fd: int | None = None,
    follow_symlinks: bool = False,
    streams: bool = False,
) -> int:
    """Open ``path`` only if it is a regular file (or ``flags`` create one).

    ``flags`` are ``os.open`` flags; ``O_CLOEXEC`` is added, and ``O_NOFOLLOW``
    unless ``follow_symlinks`` (only for files that are read, never written).
    With ``streams``, a character device or a named pipe that a process reads
    is accepted too (a log destination). Raises :class:`NotRegularFileError`
    for anything else (a block device, a pipe nobody reads, a socket, a
    directory, a symbolic link when not followed) and ``OSError`` for what
    the system refuses. The file is never truncated or written here.
    """
    before: os.stat_result | None = None
    try:
        before = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
    else:
        if not _accepted(before.st_mode, streams):
            raise NotRegularFileError(_refusal(before.st_mode, streams), path)
    extra = os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags | extra, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise NotRegularFileError("it is a symbolic link (refused)", path) from None
        if exc.errno == errno.ENXIO and before is not None and stat.S_ISFIFO(before.st_mode):
            raise NotRegularFileError("it is a named pipe nobody reads (refused)", path) from None
        raise
    try:
        opened = os.fstat(fd)
        if not _accepted(opened.st_mode, streams):
            raise NotRegularFileError(_refusal(opened.st_mode, streams), path)
        if flags & (os.O_WRONLY | os.O_RDWR) and stat.S_ISREG(opened.st_mode):
            _check_one_name(opened)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hand_over(fd: int, uid: int, gid: int) -> bool:
    """Give the file open on ``fd`` to ``uid``/``gid`` (-1 keeps one); False if not a file.

    Only a regular file changes owner, and only through the descriptor that
    :func:`open_regular` returned: a device or a pipe keeps its owner (False).
    A regular file with more than one name is refused: another name may be
    someone else's file, linked into a folder the service user writes.
    """
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode):
        return False
    _check_one_name(opened)
    os.fchown(fd, uid, gid)
    return True


def _check_one_name(opened: os.stat_result) -> None:
    """Refuse a regular file with other names: one may be someone else's, linked in."""
    if opened.st_nlink > 1:
        raise NotRegularFileError(f"it has {opened.st_nlink} names, hard links (refused)")


def masked(mode: int, umask: int | None) -> int:
    """``mode`` less the bits ``umask`` takes (``None``: the process's own, left to the kernel).

    For files created before the runner sets the umask it will run with,
    so they get the mode that umask allows, like every file after.
    """
    return mode if umask is None else mode & ~umask


def read_regular(path: str, limit: int) -> bytes:
    """The whole content of the regular file ``path``, refusing more than ``limit`` bytes."""
    fd = open_regular(path, os.O_RDONLY, follow_symlinks=True)
    try:
        if os.fstat(fd).st_size > limit:
            raise NotRegularFileError(f"it is larger than {_size(limit)} (refused)", path)
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise NotRegularFileError(f"it is larger than {_size(limit)} (refused)", path)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(limit: int) -> str:
    if limit % (1 << 20) == 0:
        return f"{limit >> 20} MiB"
    return f"{limit} bytes"
