"""The runner's pieces on their own: pidfile, logs, loops, sd_notify, readiness pipe."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from pathlib import Path

import pytest

from tapster.runner._daemon import DIED, Readiness, _wait_for_report
from tapster.runner._logs import JsonFormatter, ReopeningFileHandler
from tapster.runner._loops import available_loops, check_loop_spec, resolved_name
from tapster.runner._pidfile import PidFile, PidFileError
from tapster.runner._systemd import notify


def test_pidfile_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    first = PidFile(str(tmp_path / "app.pid"))
    first.acquire()
    first.write(4242)
    second = PidFile(str(tmp_path / "app.pid"))
    with pytest.raises(PidFileError, match="already running as PID 4242"):
        second.acquire()
    first.remove()
    assert not (tmp_path / "app.pid").exists()
    second.acquire()  # free again
    second.remove()


def test_pidfile_write_is_atomic_and_keeps_to_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        pidfile = PidFile(str(tmp_path / "app.pid"))
        pidfile.acquire()
        pidfile.write()
    finally:
        os.umask(old)
    path = tmp_path / "app.pid"
    assert path.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # 0644 less the umask, never widened
    assert [p.name for p in tmp_path.iterdir()] == ["app.pid"]  # no temporary left
    # The lock moved with the content to the new inode.
    with pytest.raises(PidFileError):
        PidFile(str(path)).acquire()
    pidfile.remove()


def test_pidfile_taken_over_when_stale_and_refused_as_a_symlink(tmp_path: Path) -> None:
    stale = tmp_path / "stale.pid"
    stale.write_text(f"{os.getppid()}\n")  # a live, unrelated process
    pidfile = PidFile(str(stale))
    pidfile.acquire()
    pidfile.remove()
    link = tmp_path / "link.pid"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PidFileError, match="symbolic link"):
        PidFile(str(link)).acquire()


def test_pidfile_not_removed_when_replaced_by_someone_else(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    pidfile = PidFile(str(path))
    pidfile.acquire()
    path.unlink()
    path.write_text("999\n")  # another file now: not ours to delete
    pidfile.remove()
    assert path.read_text() == "999\n"


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("tapster.test", level, __file__, 1, message, None, None)


def test_reopen_and_rotation_lose_no_line(tmp_path: Path) -> None:
    handler = ReopeningFileHandler(str(tmp_path / "app.log"), rotate_size=200, backups=2)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for number in range(10):
        handler.handle(_record(f"line {number:03d}"))
    (tmp_path / "app.log").rename(tmp_path / "moved.log")
    handler.handle(_record("line 010"))  # still goes to the moved file
    handler.reopen()
    for number in range(11, 100):
        handler.handle(_record(f"line {number:03d}"))
    handler.close()
    files = ["moved.log", "app.log.2", "app.log.1", "app.log"]
    lines = [line for name in files for line in (tmp_path / name).read_text().splitlines()]
    assert lines[:11] == [f"line {n:03d}" for n in range(11)]
    numbers = [int(line.split()[1]) for line in lines[11:]]
    assert numbers == list(range(numbers[0], 100))  # the kept tail, contiguous
    assert not (tmp_path / "app.log.3").exists()
    assert all((tmp_path / name).stat().st_size <= 200 for name in files[1:])


def test_json_formatter_one_object_a_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record("hello\nworld", logging.ERROR)
        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text
    data = json.loads(text)
    assert data["message"] == "hello\nworld"
    assert data["level"] == "ERROR"
    assert data["time"].endswith("Z")
    assert "ValueError: boom" in data["exception"]


def test_loop_specs_are_checked_without_importing() -> None:
    assert check_loop_spec("asyncio") == "asyncio"
    assert check_loop_spec("pkg.mod:make.loop") == "pkg.mod:make.loop"
    for bad in ("tokio", "mod:", ":f", "a b:c", "mod:1x"):
        with pytest.raises(ValueError):
            check_loop_spec(bad)
    assert resolved_name("auto") in ("uvloop", "asyncio")
    assert [row[0] for row in available_loops()] == [
        "auto",
        "asyncio",
        "uvloop",
        "module:factory",
    ]


def test_sd_notify_to_an_abstract_socket() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        name = f"tapster-test-{os.getpid()}"
        systemd.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert systemd.recv(100) == b"READY=1"
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": "relative"})


def test_readiness_pipe_reports() -> None:
    for send, expected in [
        (lambda r: r.ready(), (0, "")),
        (lambda r: r.failed("port\nin use"), (1, "port in use")),
        (lambda r: None, (1, DIED)),
    ]:
        read_fd, write_fd = os.pipe()
        readiness = Readiness(write_fd)
        send(readiness)
        if readiness.pending:
            os.close(write_fd)
        assert _wait_for_report(read_fd) == expected
        os.close(read_fd)
