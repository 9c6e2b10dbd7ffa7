"""Reading password files safely: regular files only, of a sane size, never blocking.

A password file is named by whoever starts the server or runs
``tapster-passwd``; a typo can name ``/dev/zero``, a terminal or a named pipe.
Reading those would eat memory or hang, and rewriting them would replace a
device with a regular file. Both the checkers and ``tapster-passwd`` read
through :func:`read_password_file`, which refuses anything but a regular file
(after following symbolic links) without blocking, and caps the size.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = [
    "MAX_PASSWORD_FILE_SIZE",
    "UnsafeFileError",
    "check_password_file",
    "read_password_file",
    "real_path",
]

#: Far beyond any real password file (about 100 000 argon2id lines).
MAX_PASSWORD_FILE_SIZE = 10 * 1024 * 1024

_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnsafeFileError(OSError):
    """A password file that is not a regular file, or is too large to be one.

    ``strerror`` says why in a few words (``"it is a named pipe, not a regular
    file"``), so it fits the ``cannot read FILE: REASON`` messages the callers
    already print for other :class:`OSError`\\ s.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(reason)
        self.strerror = reason
        self.filename = os.fspath(path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def _check_stat(path: str | os.PathLike[str], st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a plain file")
        raise UnsafeFileError(path, f"it is {kind}, not a regular file")
    if st.st_size > MAX_PASSWORD_FILE_SIZE:
        raise UnsafeFileError(path, _too_large())


def _too_large() -> str:
    limit = MAX_PASSWORD_FILE_SIZE // (1024 * 1024)
    return f"it is larger than {limit} MiB, far too large for a password file"


def check_password_file(path: str | os.PathLike[str]) -> os.stat_result:
    """``stat`` ``path`` (following links) and refuse what :func:`read_password_file` would.

    Raises :class:`FileNotFoundError` and other :class:`OSError`\\ s as ``os.stat`` does.
    """
    st = os.stat(path)
    _check_stat(path, st)
    return st


def read_password_file(path: str | os.PathLike[str]) -> tuple[bytes, os.stat_result]:
    """The content of the regular file ``path`` (links followed) and its ``fstat``.

    A named pipe, device, socket or directory raises before anything is read
    (:class:`UnsafeFileError`, or :class:`IsADirectoryError`), and so does a
    file larger than :data:`MAX_PASSWORD_FILE_SIZE`. The file is opened with
    ``O_NONBLOCK`` and checked again through the open descriptor, so a pipe
    swapped in between the two checks cannot make the open hang either.
    """
    check_password_file(path)  # refuse devices without even opening them
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        _check_stat(path, st)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1024 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_PASSWORD_FILE_SIZE:  # it grew while we read it
                raise UnsafeFileError(path, _too_large())
    finally:
        os.close(fd)
    return b"".join(chunks), st


def real_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with every symbolic link resolved: the file a rewrite must replace.

    A dangling link resolves to the file it names, so that writing "through" it
    creates that file, as the shell's ``>`` would.
    """
    return Path(os.path.realpath(path))
