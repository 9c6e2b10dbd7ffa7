"""The access log in the server's main log, written in batches: nothing lost, nothing late.

Every test runs a real ``tapster --logfile F web`` and counts the combined-log
lines in F (and in the files logrotate-style renames left behind) against the
requests a client saw answered. The no-loss tests run once as a single process
and once with ``--workers 2``, where the supervisor writes both workers' lines
into F: none may be lost, repeated or broken by the other worker's.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: What the runner promises: a line is written at most this long after it was logged
#: (``tapster.runner._logs.FLUSH_INTERVAL`` is 0.1 s; the rest is slack for a busy machine).
PROMPT = 1.0


#: One process, or a supervisor and two workers (each a parameter of the no-loss tests).
PROCESSES = [pytest.param((), id="one-process"), pytest.param(("-w", "2"), id="2-workers")]
#: A whole access line of a worker, as the supervisor passes it on.
WORKER_ACCESS_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO \[worker (\d)\] tapster\.web\.access: "
    r'127\.0\.0\.1 - - \[[^\]]+\] "GET /one\.bin HTTP/1\.1" 200 1024 "-" "[^"]*"'
)


def wait_workers(log: Path, processes: tuple[str, ...] = ("-w", "2")) -> None:
    """With workers, wait until all are ready (the port accepts before they are)."""
    if processes:
        wait_until(lambda: log.exists() and f"ready: {processes[1]} workers" in log.read_text())


def access_lines(*files: Path, path: str = "/one.bin") -> int:
    needle = f'"GET {path} HTTP/1.1" 200 '
    return sum(f.read_text().count(needle) for f in files if f.exists())


def check_worker_lines(*files: Path) -> dict[int, int]:
    """Every access line is whole and marked with its worker; how many each worker wrote."""
    counts: dict[int, int] = {}
    for f in files:
        for line in f.read_text().splitlines():
            if "tapster.web.access" not in line:
                continue
            match = WORKER_ACCESS_LINE.fullmatch(line)
            assert match, f"a broken or unmarked access line in {f.name}: {line!r}"
            counts[int(match.group(1))] = counts.get(int(match.group(1)), 0) + 1
    return counts


class Load:
    """Keep-alive clients sending GETs until stopped; counts the answers they read."""

    def __init__(
        self, web: Any, path: str = "/one.bin", clients: int = 4, fresh: bool = False
    ) -> None:
        self.web = web
        self.path = path
        self.fresh = fresh  # a new connection a request: every worker gets its share
        self.answered = 0
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def _client(self) -> None:
        conn = self.web.conn()
        try:
            while not self._stop.is_set():
                conn.request("GET", self.path)
                response = conn.getresponse()
                response.read()
                assert response.status == 200
                with self._lock:
                    self.answered += 1
                if self.fresh:
                    conn.close()
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)
        finally:
            conn.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not self.errors, self.errors
        return self.answered


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def stop(web: Any) -> str:
    web.proc.send_signal(signal.SIGTERM)
    _, err = web.proc.communicate(timeout=30)
    assert web.proc.returncode == 0, err
    return str(err)


@pytest.mark.parametrize("processes", PROCESSES)
def test_every_access_line_is_written_by_a_graceful_stop(serve, site: Path, processes) -> None:
    """Thousands of requests, SIGTERM right after the last answer: every line is in the file."""
    log = site / "main.log"
    web = serve(cwd=site, runner=["--logfile", str(log), *processes])
    wait_workers(log, processes)
    with Load(web, fresh=bool(processes)) as load:
        wait_until(lambda: load.answered >= 3000)
    answered = load.answered
    stop(web)
    assert access_lines(log) == answered
    if processes:
        counts = check_worker_lines(log)
        assert set(counts) == {1, 2} and sum(counts.values()) == answered, counts
    text = log.read_text()
    assert text.index('"GET /one.bin') < text.index("stopped")  # in order, before the end


@pytest.mark.parametrize("processes", PROCESSES)
def test_reopen_under_load_loses_and_repeats_no_access_line(serve, site: Path, processes) -> None:
    """logrotate's rename + SIGUSR1, three times while clients keep requesting."""
    log = site / "main.log"
    web = serve(cwd=site, runner=["--logfile", str(log), *processes])
    wait_workers(log, processes)
    moved: list[Path] = []
    with Load(web, fresh=bool(processes)) as load:
        # With workers SIGHUP also reloads them (test_reload.py): SIGUSR1 alone reopens.
        middle = signal.SIGUSR1 if processes else signal.SIGHUP
        for round_, signum in enumerate([signal.SIGUSR1, middle, signal.SIGUSR1]):
            wait_until(lambda goal=800 * (round_ + 1): load.answered >= goal)
            target = site / f"main.log.{round_ + 1}"
            log.rename(target)
            moved.append(target)
            web.proc.send_signal(signum)
            wait_until(lambda: log.exists() and "log reopened" in log.read_text())
    answered = load.answered
    stop(web)
    assert access_lines(*moved, log) == answered
    for target in moved:
        assert access_lines(target) > 0, target
    assert access_lines(log) > 0
    if processes:
        counts = check_worker_lines(*moved, log)
        assert set(counts) == {1, 2} and sum(counts.values()) == answered, counts


def test_size_rotation_with_workers_loses_no_access_line(serve, site: Path) -> None:
    """--log-rotate-size with 2 workers: the supervisor alone rotates; every line is kept."""
    log = site / "main.log"
    runner = [
        "--logfile",
        str(log),
        "--log-rotate-size",
        "65536",
        "--log-backups",
        "100",
        "-w",
        "2",
    ]
    web = serve(cwd=site, runner=runner)
    wait_workers(log)
    with Load(web, fresh=True) as load:
        wait_until(lambda: (site / "main.log.3").exists(), timeout=60)
    answered = load.answered
    stop(web)
    files = [*sorted(site.glob("main.log.*"), key=lambda f: -int(f.suffix[1:])), log]
    assert len(files) >= 4
    for f in files[:-1]:
        assert f.stat().st_size <= 64 * 1024, f
    assert access_lines(*files) == answered
    counts = check_worker_lines(*files)
    assert set(counts) == {1, 2} and sum(counts.values()) == answered, counts


def test_json_access_lines_with_workers_are_marked(serve, site: Path) -> None:
    """--log-format json with 2 workers: every line one object, each access record its worker's."""
    log = site / "main.log"
    web = serve(cwd=site, runner=["--logfile", str(log), "--log-format", "json", "-w", "2"])
    wait_workers(log)
    with Load(web, fresh=True) as load:
        wait_until(lambda: load.answered >= 500)
    answered = load.answered
    stop(web)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    access = [r for r in records if r["logger"] == "tapster.web.access"]
    assert len(access) == answered
    assert {r["worker"] for r in access} == {1, 2}
    # Each worker's records carry that worker's PID, the same for all of them.
    pids = {r["worker"]: {a["pid"] for a in access if a["worker"] == r["worker"]} for r in access}
    assert all(len(p) == 1 for p in pids.values()) and pids[1] != pids[2]
    assert all("worker" not in r for r in records if r["pid"] == web.proc.pid)


def test_a_line_appears_promptly_on_an_idle_server(serve, site: Path) -> None:
    """One request, then nothing: its line is in the file within a fraction of a second."""
    log = site / "main.log"
    web = serve(cwd=site, runner=["--logfile", str(log)])
    wait_until(lambda: log.exists() and "ready" in log.read_text())
    for _ in range(3):
        before = access_lines(log)
        status, _, _ = web.get("/one.bin")
        answered = time.monotonic()
        assert status == 200
        wait_until(lambda n=before: access_lines(log) == n + 1, timeout=5)
        assert time.monotonic() - answered < PROMPT
        time.sleep(0.3)  # idle in between: nothing may wait for the next line
    stop(web)


def test_json_main_log_access_lines(serve, site: Path) -> None:
    """--log-format json: an access line is one object, as any other record."""
    log = site / "main.log"
    web = serve(cwd=site, runner=["--logfile", str(log), "--log-format", "json"])
    conn = web.conn()
    for _ in range(50):
        conn.request("GET", "/one.bin", headers={"User-Agent": 'quote"agent'})
        conn.getresponse().read()
    conn.close()
    pid = web.proc.pid
    stop(web)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    access = [r for r in records if r["logger"] == "tapster.web.access"]
    assert len(access) == 50
    assert access[0]["level"] == "INFO" and access[0]["pid"] == pid
    assert access[0]["message"].endswith('"GET /one.bin HTTP/1.1" 200 1024 "-" "quote\\"agent"')
    assert access[0]["time"].endswith("Z")


def test_stderr_destination_gets_every_line_by_the_end(serve, site: Path) -> None:
    """The foreground default (stderr, here a pipe): batched too, all there at the stop."""
    web = serve(cwd=site)
    conn = web.conn()
    for _ in range(200):
        conn.request("GET", "/one.bin")
        conn.getresponse().read()
    conn.close()
    err = stop(web)
    assert err.count('"GET /one.bin HTTP/1.1" 200 1024') == 200
    assert err.rstrip().endswith("stopped")


def test_access_records_reach_every_other_handler_and_filter(tmp_path: Path) -> None:
    """The shortcut around LogRecord is taken only when nobody else would see the record."""
    import logging

    from tapster.runner._logs import LogConfig, setup_logging
    from tapster.web._accesslog import AccessLog, logger

    main = tmp_path / "main.log"
    logs = setup_logging(LogConfig(file=str(main)))
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    access = AccessLog(True)
    extra = Keep()
    try:
        access.write("plain line")
        logger.addHandler(extra)
        access.write("seen line")
        logger.removeHandler(extra)
        logger.addFilter(lambda record: "secret" not in record.getMessage())
        access.write("secret line")
        logger.disabled = True  # what logging.config does to loggers it does not name
        access.write("disabled line")
        logger.disabled = False
        access.write("last line")
    finally:
        logger.removeHandler(extra)
        logger.filters.clear()
        logger.disabled = False
        logs.close()
        logging.getLogger().setLevel(logging.WARNING)
    assert [r.getMessage() for r in seen] == ["seen line"]
    assert seen[0].name == "tapster.web.access" and seen[0].levelno == logging.INFO
    assert seen[0].threadName == threading.current_thread().name
    lines = main.read_text().splitlines()
    assert [line.split(" INFO tapster.web.access: ")[1] for line in lines] == [
        "plain line",
        "seen line",
        "last line",
    ]
