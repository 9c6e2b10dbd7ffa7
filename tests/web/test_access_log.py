"""The access log in the server's main log, written in batches: nothing lost, nothing late.

Every test runs a real ``tapster --logfile F web`` and counts the combined-log
lines in F (and in the files logrotate-style renames left behind) against the
requests a client saw answered.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: What the runner promises: a line is written at most this long after it was logged
#: (``tapster.runner._logs.FLUSH_INTERVAL`` is 0.1 s; the rest is slack for a busy machine).
PROMPT = 1.0


def access_lines(*files: Path, path: str = "/one.bin") -> int:
    needle = f'"GET {path} HTTP/1.1" 200 '
    return sum(f.read_text().count(needle) for f in files if f.exists())


class Load:
    """Keep-alive clients sending GETs until stopped; counts the answers they read."""

    def __init__(self, web: Any, path: str = "/one.bin", clients: int = 4) -> None:
        self.web = web
        self.path = path
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


def test_every_access_line_is_written_by_a_graceful_stop(serve, site: Path) -> None:
    """Thousands of requests, SIGTERM right after the last answer: every line is in the file."""
    log = site / "main.log"
    web = serve(cwd=site, runner=["--logfile", str(log)])
    with Load(web) as load:
        wait_until(lambda: load.answered >= 3000)
    answered = load.answered
    stop(web)
    assert access_lines(log) == answered
    text = log.read_text()
    assert text.index('"GET /one.bin') < text.index("stopped")  # in order, before the end


def test_reopen_under_load_loses_and_repeats_no_access_line(serve, site: Path) -> None:
    """logrotate's rename + SIGUSR1, three times while clients keep requesting."""
    log = site / "main.log"
    web = serve(cwd=site, runner=["--logfile", str(log)])
    moved: list[Path] = []
    with Load(web) as load:
        for round_, signum in enumerate([signal.SIGUSR1, signal.SIGHUP, signal.SIGUSR1]):
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
