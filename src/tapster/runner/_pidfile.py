"""A pidfile guarded by an ``flock`` held for the life of the process.

A PID alone proves nothing: after a crash the number is reused (in containers
PID 1 or 7 is taken by *someone* again at every start), so a check based on
``kill(pid, 0)`` either refuses to start forever or lets two instances run.
Here the file's inode carries an exclusive ``flock`` for as long as the
instance lives; the kernel drops it when the process dies, however it dies.
A file nobody holds a lock on is stale, whatever PID it names.

Resource handling: :meth:`PidFile.acquire` takes the lock on whatever sits at
the path (creating an empty file if there is none) and keeps it; this is the
"check" step and runs before the daemon forks (an ``flock`` belongs to the
open file description, so it survives ``fork`` and the parent's exit).
:meth:`PidFile.write` then puts the final PID in place by an atomic rename of
a fresh, already locked file, so a reader never sees a half-written PID and
the lock moves with the content. Every path operation goes through a file
descriptor of the directory, so the same file is handled before and after a
``chroot``. :meth:`PidFile.remove` unlinks the file only while this process
holds the lock on the inode at the path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time

from tapster.runner._files import hand_over, open_regular

__all__ = ["MODE", "PidFile", "PidFileError"]

#: Mode of the pidfile: readable by all, less what the umask takes (0600 for a daemon).
MODE = 0o644
_MAX_PID_BYTES = 24  # "4194304\n" and then some; anything longer is not a pidfile


class PidFileError(Exception):
    """The pidfile cannot be used: another instance holds it, or the file system refuses."""


class PidFile:
    """One pidfile, identified by its directory and base name."""

    def __init__(self, path: str, mode: int = MODE) -> None:
        self.path = os.path.abspath(path)
        self.mode = mode
        self._dir_fd: int | None = None
        self._fd: int | None = None

    @property
    def name(self) -> str:
        """The file's base name inside its directory."""
        return os.path.basename(self.path)

    @property
    def locked(self) -> bool:
        """True while this process holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Lock the file at the path for this process, or raise :class:`PidFileError`.

        A file locked by a live process means another instance runs: the error
        names its PID and the file. An unlocked file is stale and is taken over.
        """
        directory = os.path.dirname(self.path)
        try:
            self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise PidFileError(
                f"cannot use pidfile {self.path}: directory {directory}: {_reason(exc)}"
            ) from None
        for _attempt in range(50):
            try:
                fd = open_regular(self.name, os.O_RDWR | os.O_CREAT, self.mode, dir_fd=self._dir_fd)
            except OSError as exc:
                self._close_dir()
                raise PidFileError(f"cannot open pidfile {self.path}: {_reason(exc)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                self._close_dir()
                who = f"PID {pid}" if pid else "another process"
                raise PidFileError(
                    f"already running as {who} (pidfile {self.path}); "
                    "stop it first or choose another --pidfile"
                ) from None
            if self._same_inode(fd):
                if not _holds_a_pid_or_nothing(fd):
                    os.close(fd)
                    self._close_dir()
                    raise PidFileError(
                        f"cannot use pidfile {self.path}: it holds something other than a PID "
                        "(refused, left as it is); check the path, or remove the file"
                    )
                self._fd = fd
                return
            # The file was replaced or removed between open and lock: try again.
            os.close(fd)
        self._close_dir()
        raise PidFileError(f"cannot lock pidfile {self.path}: it keeps changing")

    def write(self, pid: int | None = None) -> None:
        """Atomically replace the file's content with ``pid`` (default: this process)."""
        if self._fd is None or self._dir_fd is None:
            raise RuntimeError("write() before acquire()")
        text = f"{os.getpid() if pid is None else pid}\n".encode("ascii")
        tmp = f".{self.name}.{os.getpid()}.tmp"
        try:
            fd = open_regular(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode, dir_fd=self._dir_fd
            )
        except OSError as exc:
            raise PidFileError(f"cannot write pidfile {self.path}: {_reason(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, text)
            os.fsync(fd)
            os.rename(tmp, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self._dir_fd)
            raise PidFileError(f"cannot write pidfile {self.path}: {_reason(exc)}") from None
        os.close(self._fd)
        self._fd = fd

    def chown(self, uid: int, gid: int) -> None:
        """Give the file to the user the process is about to become (see ``_files.hand_over``).

        ``OSError`` for a file with other names (a hard link).
        """
        if self._fd is not None:
            hand_over(self._fd, uid, gid)

    def read(self) -> int | None:
        """The PID recorded in the file this process holds, if any."""
        return None if self._fd is None else _read_pid(self._fd)

    def remove(self) -> None:
        """Delete the file if it is still ours, then release the lock. Never raises."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if self._same_inode(fd):
                    try:
                        os.unlink(self.name, dir_fd=self._dir_fd)
                    except PermissionError:
                        # The directory is not writable by the user we became:
                        # leave an empty, unlocked file, which never blocks a start.
                        os.ftruncate(fd, 0)
            except OSError:
                pass
            finally:
                os.close(fd)
        self._close_dir()

    def remove_when_released(self, timeout: float = 2.0) -> None:
        """Remove the file once nobody holds its lock (the daemon it belonged to died).

        For the launcher of a daemon that died before reporting: the daemon's
        descriptors close as it exits, a moment after its end of the pipe. A
        file still locked after ``timeout`` belongs to someone alive and stays.
        Works after a ``chroot`` too (everything goes through the directory's
        descriptor).
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        deadline = time.monotonic() + timeout
        try:
            while self._dir_fd is not None:
                try:
                    fd = open_regular(self.name, os.O_RDWR, dir_fd=self._dir_fd)
                except OSError:
                    return
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    if time.monotonic() > deadline:
                        return
                    time.sleep(0.01)
                    continue
                try:
                    if self._same_inode(fd):
                        os.unlink(self.name, dir_fd=self._dir_fd)
                except OSError:
                    pass
                finally:
                    os.close(fd)
                return
        finally:
            self._close_dir()

    def forget(self) -> None:
        """Close without removing: another process (the daemon) owns the file now."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._close_dir()

    def _same_inode(self, fd: int) -> bool:
        try:
            st = os.stat(self.name, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        own = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def _close_dir(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None


def _holds_a_pid_or_nothing(fd: int) -> bool:
    """True for an empty file or one PID line: what a pidfile may hold.

    Anything else was not written by us, and a pidfile is replaced and
    deleted: a mistyped ``--pidfile`` must not destroy someone's file.
    """
    if os.fstat(fd).st_size > _MAX_PID_BYTES:
        return False
    data = os.pread(fd, _MAX_PID_BYTES + 1, 0)
    text = data.strip()
    return not text or (text.isdigit() and text.isascii() and data.count(b"\n") <= 1)


def _read_pid(fd: int) -> int | None:
    try:
        data = os.pread(fd, 64, 0)
        return int(data.strip() or b"0") or None
    except (OSError, ValueError):
        return None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link (refused)"
    return exc.strerror or str(exc)
