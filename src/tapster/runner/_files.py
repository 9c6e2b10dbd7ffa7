"""Opening the files the runner is pointed at, refusing what is not a plain file.

The runner runs as root more often than not, and a mistyped ``--pidfile`` or
``-y`` must not turn into replacing ``/dev/null``, deleting a device node or
reading ``/dev/zero`` until memory runs out. Every file the runner writes,
replaces, renames or reads as a whole is opened here:

- the name is looked at first (``lstat``, without opening it: opening a device
  can have effects of its own) and anything but a regular file is refused with
  a reason naming what it is;
- the open itself is non-blocking, so a named pipe nobody writes to (or reads
  from) cannot hang start-up, and the opened file is checked again (the name
  may have changed in between).

Errors are :class:`NotRegularFileError`, an ``OSError`` whose ``strerror`` is
the reason, so callers that already turn ``OSError`` into one line need
nothing new.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["NotRegularFileError", "describe_kind", "open_regular", "read_regular"]


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


def _refusal(mode: int) -> str:
    kind = describe_kind(mode)
    if stat.S_ISLNK(mode):
        return "it is a symbolic link (refused)"
    return f"it is {kind}, not a regular file (refused)"


def open_regular(
    path: str,
    flags: int,
    mode: int = 0o644,
    *,
    dir_fd: int | None = None,
    follow_symlinks: bool = False,
) -> int:
    """Open ``path`` only if it is a regular file (or ``flags`` create one).

    ``flags`` are ``os.open`` flags; ``O_CLOEXEC`` is added, and ``O_NOFOLLOW``
    unless ``follow_symlinks``. Raises :class:`NotRegularFileError` for
    anything else (a device, a pipe, a socket, a directory, a symbolic link
    when not followed) and ``OSError`` for what the system refuses. The file
    is never truncated or written here.
    """
    try:
        before = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
    else:
        if not stat.S_ISREG(before.st_mode):
            raise NotRegularFileError(_refusal(before.st_mode), path)
    extra = os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    fd = os.open(path, flags | extra, mode, dir_fd=dir_fd)
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise NotRegularFileError(_refusal(opened.st_mode), path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


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
