"""Batched log writes: what must be written at once, and what no exit path may lose.

Real files, real forks, a real pseudo-terminal and a real ``tapster`` process
that exits with status 3 or is forced to stop.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import select
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest
from support import free_port

from tapster.runner._logs import (
    FLUSH_INTERVAL,
    BatchingStreamHandler,
    JsonFormatter,
    ReopeningFileHandler,
    TextFormatter,
)

LINE = re.compile(r"line (\d+)")


def record(
    message: str, level: int = logging.INFO, name: str = "tapster.test"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


def numbers(path: Path) -> list[int]:
    return [int(m.group(1)) for m in LINE.finditer(path.read_text())] if path.exists() else []


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def file_handler(path: Path, **kwargs: int) -> ReopeningFileHandler:
    handler = ReopeningFileHandler(str(path), **kwargs)
    handler.setFormatter(TextFormatter())
    return handler


def test_info_lines_wait_at_most_the_interval_and_warnings_go_at_once(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    handler = file_handler(log)
    try:
        start = time.monotonic()
        for number in range(5):
            handler.handle(record(f"line {number}"))
        wait_until(lambda: len(numbers(log)) == 5, timeout=5)
        assert time.monotonic() - start < FLUSH_INTERVAL + 0.9
        for number in range(5, 10):
            handler.handle(record(f"line {number}"))
        handler.handle(record("line 10 went wrong", logging.WARNING))
        # Written before handle() returned, after the lines logged before it.
        assert numbers(log) == list(range(11))
        handler.handle(record("line 11"))
        handler.handle(record("line 12 from the runner", name="tapster.runner"))
        assert numbers(log) == list(range(13))
    finally:
        handler.close()
    assert numbers(log) == list(range(13))


def test_close_writes_what_waits_and_stops_the_writer(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    handler = file_handler(log)
    for number in range(2000):
        handler.handle(record(f"line {number}"))
    handler.close()
    assert numbers(log) == list(range(2000))
    assert not [t for t in threading.enumerate() if t.name == "tapster-log-writer"]


@pytest.mark.parametrize("turnover", ["reopen", "rotate"])
def test_lines_from_many_threads_all_land_once(tmp_path: Path, turnover: str) -> None:
    """Worker threads log too (WSGI pool, hashing pool): no line lost, none twice.

    While they log, the file is either moved and reopened (logrotate) or
    rotated by size; not both at once, which no setup does.
    """
    log = tmp_path / "app.log"
    size = 20_000 if turnover == "rotate" else None
    handler = ReopeningFileHandler(str(log), rotate_size=size, backups=50)
    handler.setFormatter(TextFormatter())

    def work(first: int) -> None:
        for number in range(first, first + 2000):
            handler.handle(record(f"line {number}"))

    threads = [threading.Thread(target=work, args=(n * 2000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    if turnover == "reopen":
        for index in range(3):
            time.sleep(0.02)
            log.rename(tmp_path / f"moved.{index}")
            handler.reopen()
    for thread in threads:
        thread.join()
    handler.close()
    files = sorted(tmp_path.iterdir())
    found = [n for path in files for n in numbers(path)]
    assert sorted(found) == list(range(8000))
    if turnover == "rotate":
        assert len(files) > 5
        assert all(path.stat().st_size <= 20_000 for path in files)
    else:
        assert [path.name for path in files] == ["app.log", "moved.0", "moved.1", "moved.2"]


def test_lines_waiting_at_a_fork_are_written_once(tmp_path: Path) -> None:
    """What waits is written before the fork: neither the child nor the parent repeats it."""
    log = tmp_path / "app.log"
    handler = file_handler(log)
    for number in range(100):
        handler.handle(record(f"line {number}"))
    pid = os.fork()
    if pid == 0:  # the child: log one line of its own, close (as an exit does), leave
        try:
            handler.handle(record("line 100"))
            handler.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    handler.handle(record("line 101"))
    handler.close()
    assert numbers(log) == list(range(102))


def test_a_terminal_gets_each_line_at_once_and_a_pipe_gets_batches() -> None:
    main, side = pty.openpty()
    read_end, write_end = os.pipe()
    terminal = open(side, "w", closefd=True)  # noqa: SIM115 (closed below)
    pipe = open(write_end, "w", closefd=True)  # noqa: SIM115
    on_terminal = BatchingStreamHandler(terminal)
    on_pipe = BatchingStreamHandler(pipe)
    try:
        assert on_terminal.immediate and not on_pipe.immediate
        on_terminal.setFormatter(TextFormatter())
        on_terminal.handle(record("line 1 for a human"))
        ready, _, _ = select.select([main], [], [], 0)  # already there, no waiting
        assert ready and b"line 1 for a human" in os.read(main, 4096)
        on_pipe.setFormatter(TextFormatter())
        on_pipe.handle(record("line 2 for a program"))
        ready, _, _ = select.select([read_end], [], [], 5)
        assert ready and b"line 2 for a program" in os.read(read_end, 4096)
    finally:
        on_terminal.close()
        on_pipe.close()
        terminal.close()
        pipe.close()
        os.close(main)
        os.close(read_end)


CHATTY = '''
import asyncio
import logging
import sys

from tapster.service import Service, ServiceMaker
from tapster.usage import Options, port

log = logging.getLogger("tapster.test.chatty")


class Chatty(Service):
    """Logs twenty lines a millisecond. --how exit: exits with status 3 after
    3000 lines; --how hang: its stop keeps logging and never ends."""

    def __init__(self, port, how):
        super().__init__()
        self.port = port
        self.how = how
        self.number = 0
        self.task = None
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", self.port)
        self.task = asyncio.ensure_future(self.chatter())

    async def chatter(self):
        while True:
            for _ in range(20):
                log.info("line %d", self.number)
                self.number += 1
            if self.how == "exit" and self.number >= 3000:
                log.info("leaving with status 3")
                sys.exit(3)
            await asyncio.sleep(0.001)

    async def stop(self):
        self.server.close()
        if self.how == "hang":
            self.task.cancel()
            await self.chatter()


class Opts(Options):
    parameters = [("port", "p", 0, "Port.", port), ("how", None, "exit", "exit or hang.")]


class Maker(ServiceMaker):
    tapname = "chatty"
    description = "A service that logs a lot, then ends badly."
    options = Opts

    def make_service(self, options):
        return Chatty(options["port"], options["how"])


maker = Maker()
'''


def chatty_project(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    plugins = project / "tapster" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "chatty_plugin.py").write_text(textwrap.dedent(CHATTY))
    return project


def test_an_exit_after_start_writes_every_line(tmp_path: Path, tapster_proc) -> None:
    """A service that calls sys.exit(3) while running: every line it logged is there."""
    project = chatty_project(tmp_path)
    log = project / "app.log"
    proc = tapster_proc.start("-l", "app.log", "chatty", "-p", str(free_port()), cwd=project)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert numbers(log) == list(range(3000))
    assert log.read_text().rstrip().endswith("leaving with status 3")


def test_a_forced_exit_writes_every_line(tmp_path: Path, tapster_proc) -> None:
    """A stop that never ends, then a second SIGINT (exit 130 at once): nothing lost."""
    project = chatty_project(tmp_path)
    log = project / "app.log"
    proc = tapster_proc.start(
        "-l", "app.log", "chatty", "-p", str(free_port()), "--how", "hang", cwd=project
    )
    wait_until(lambda: len(numbers(log)) > 1000, timeout=30)
    proc.send_signal(signal.SIGINT)
    wait_until(lambda: "stopping" in log.read_text(), timeout=30)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    found = numbers(log)
    assert found == list(range(len(found)))
    text = log.read_text()
    assert text.index("second SIGINT") > text.index("stopping")


def test_time_stamps_cached_per_second_are_still_exact() -> None:
    text, data = TextFormatter(), JsonFormatter()
    for created in (1_000_000_000.25, 1_000_000_000.999, 1_000_000_001.0, 1_700_000_000.5):
        item = record("line 1")
        item.created, item.msecs = created, (created - int(created)) * 1000
        local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        assert text.format(item) == f"{local}.{int(item.msecs):03d} INFO tapster.test: line 1"
        utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        assert json.loads(data.format(item))["time"] == f"{utc}.{int(item.msecs):03d}Z"
    text.converter = time.gmtime  # set after the first lines: followed from the next second
    item = record("line 2")
    item.created, item.msecs = 1_700_000_002.5, 500.0
    assert text.format(item).startswith(
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1_700_000_002)) + ".500 "
    )
