"""The process supervisor in-process: real child processes, real signals, real pipes."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tapster.procmon import Backoff, ProcessMonitor, RestartPolicy
from tapster.procmon._repeats import RepeatedLog

Runner = Callable[[Awaitable[Any]], Any]


@pytest.fixture
def run(run_async: Callable[[Any], Any]) -> Runner:
    """Run a coroutine with a time limit, on asyncio and on uvloop."""

    def runner(coro: Awaitable[Any]) -> Any:
        async def main() -> Any:
            async with asyncio.timeout(30):
                return await coro

        return run_async(main())

    return runner


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (waiting for someone else to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tapster.procmon"]


def test_backoff_doubles_caps_and_resets_after_a_stable_run() -> None:
    b = Backoff(RestartPolicy(threshold=2, min_restart_delay=1, max_restart_delay=5))
    assert [b.after_exit(0.1) for _ in range(5)] == [1, 2, 4, 5, 5]
    assert b.after_exit(3.0) == 0  # stable: restart at once, delay back to the minimum
    assert b.after_exit(0.1) == 1


def test_a_start_that_failed_is_never_stable() -> None:
    b = Backoff(RestartPolicy(threshold=0, min_restart_delay=1, max_restart_delay=5))
    assert b.after_exit(0.0) == 0  # -t 0: every run is stable
    assert [b.after_exit(None) for _ in range(4)] == [1, 2, 4, 5]


def test_repeated_messages_are_logged_once_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    repeats = RepeatedLog(logging.getLogger("tapster.procmon"), logging.ERROR, 60, lambda: now[0])
    with caplog.at_level(logging.INFO, "tapster.procmon"):
        for _ in range(3):
            repeats.log("no")
        now[0] = 61.0
        repeats.log("no")  # a minute on: the count so far, even though it goes on
        repeats.log("no")
        repeats.log("other")
        repeats.end()
        repeats.end()
    assert messages(caplog) == [
        "no",
        "no (repeated 3 times)",
        "no (repeated 1 time)",
        "other",
    ]


def test_policy_rejects_min_above_max() -> None:
    with pytest.raises(ValueError, match="minimum restart delay"):
        RestartPolicy(min_restart_delay=5, max_restart_delay=1)


def test_output_lines_are_logged_with_the_child_name(
    caplog: pytest.LogCaptureFixture, run: Runner
) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")
    script = "echo first line; echo oops >&2; printf 'caf\\303\\251\\r\\nno newline'; sleep 30"

    async def main() -> None:
        mon = ProcessMonitor(RestartPolicy(killtime=2))
        mon.add_process("talker", ["sh", "-c", script])
        await mon.start()
        await until(lambda: "talker: café" in messages(caplog))
        await mon.stop()

    run(main())
    msgs = messages(caplog)
    assert "talker: first line" in msgs
    assert "talker (stderr): oops" in msgs
    assert "talker: no newline" in msgs  # logged when the pipe closes
    stderr_record = next(r for r in caplog.records if r.getMessage() == "talker (stderr): oops")
    assert stderr_record.levelno == logging.WARNING
    assert stderr_record.procmon_child == "talker"  # type: ignore[attr-defined]


def test_restart_delays_grow_exponentially(caplog: pytest.LogCaptureFixture, run: Runner) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")
    policy = RestartPolicy(threshold=10, min_restart_delay=0.2, max_restart_delay=0.8)

    async def main() -> list[float]:
        mon = ProcessMonitor(policy)
        mon.add_process("crasher", ["sh", "-c", "exit 3"])
        await mon.start()
        starts = lambda: [  # noqa: E731
            r.created for r in caplog.records if r.getMessage().startswith("started crasher")
        ]
        await until(lambda: len(starts()) >= 5)
        # Read before stopping: stop may catch the fifth run before `exit 3` (SIGTERM).
        assert mon.children["crasher"].last_exit == 3
        await mon.stop()
        return starts()

    times = run(main())
    gaps = [b - a for a, b in itertools.pairwise(times)][:4]
    for gap, expected in zip(gaps, [0.2, 0.4, 0.8, 0.8], strict=True):
        assert expected * 0.9 <= gap <= expected + 0.8, gaps
    assert any("ended after" in m and "exit status 3" in m for m in messages(caplog))


def test_stable_run_restarts_at_once(caplog: pytest.LogCaptureFixture, run: Runner) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")
    policy = RestartPolicy(threshold=0.2, min_restart_delay=5, max_restart_delay=10)

    async def main() -> None:
        mon = ProcessMonitor(policy)
        mon.add_process("steady", ["sleep", "0.3"])
        await mon.start()
        # Three runs well within one minimum delay: no backoff after stable runs.
        await until(lambda: mon.children["steady"].starts >= 3, timeout=4)
        await mon.stop()

    run(main())
    assert not any(m.startswith("restarting steady") for m in messages(caplog))


def test_sigterm_then_sigkill_after_killtime(caplog: pytest.LogCaptureFixture, run: Runner) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")
    # An ignored signal stays ignored across exec, so the whole group ignores SIGTERM.
    script = "trap '' TERM; echo ready; while :; do sleep 0.05; done"

    async def main() -> tuple[float, int, int | None]:
        mon = ProcessMonitor(RestartPolicy(killtime=0.6))
        mon.add_process("stubborn", ["sh", "-c", script])
        await mon.start()
        await until(lambda: "stubborn: ready" in messages(caplog))
        pid = mon.children["stubborn"].last_pid
        began = time.monotonic()
        await mon.stop()
        return time.monotonic() - began, pid, mon.children["stubborn"].last_exit

    took, pid, code = run(main())
    assert 0.55 <= took < 3.0
    assert code == -9
    assert not alive(pid)
    assert any("sending SIGKILL" in m for m in messages(caplog))


def test_polite_child_stops_on_sigterm_without_waiting_killtime(run: Runner) -> None:
    async def main() -> tuple[float, int | None]:
        mon = ProcessMonitor(RestartPolicy(killtime=10))
        mon.add_process("polite", ["sleep", "60"])
        await mon.start()
        await until(lambda: mon.children["polite"].pid is not None)
        began = time.monotonic()
        await mon.stop()
        return time.monotonic() - began, mon.children["polite"].last_exit

    took, code = run(main())
    assert took < 2.0
    assert code == -15


def test_stop_leaves_no_processes_behind(caplog: pytest.LogCaptureFixture, run: Runner) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")
    # A shell with children of its own: the kind of tree that leaves orphans.
    script = "sleep 60 & echo kid $!; sleep 60 & echo kid $!; wait"

    async def main() -> list[int]:
        mon = ProcessMonitor(RestartPolicy(killtime=2))
        for n in range(3):
            mon.add_process(f"tree{n}", ["sh", "-c", script])
        await mon.start()
        kids = lambda: [  # noqa: E731
            int(m.rsplit(" ", 1)[1]) for m in messages(caplog) if ": kid " in m
        ]
        await until(lambda: len(kids()) == 6)
        pids = [c.last_pid for c in mon.children.values()] + kids()
        assert all(alive(p) for p in pids)
        await mon.stop()
        return pids

    pids = run(main())
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if alive(p)] == []


def test_leftovers_of_an_exited_child_are_cleaned_before_restart(
    caplog: pytest.LogCaptureFixture, run: Runner
) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")
    script = "sleep 60 & echo kid $!; exit 1"
    policy = RestartPolicy(threshold=10, min_restart_delay=0.1, killtime=1)

    async def main() -> list[int]:
        mon = ProcessMonitor(policy)
        mon.add_process("leaky", ["sh", "-c", script])
        await mon.start()
        await until(lambda: mon.children["leaky"].starts >= 2)
        await mon.stop()
        return [int(m.rsplit(" ", 1)[1]) for m in messages(caplog) if ": kid " in m]

    kids = run(main())
    assert kids
    time.sleep(0.2)
    assert [p for p in kids if alive(p)] == []
    assert any("left processes behind" in m for m in messages(caplog))


def test_missing_program_is_logged_and_retried(
    caplog: pytest.LogCaptureFixture, run: Runner
) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")
    policy = RestartPolicy(threshold=10, min_restart_delay=0.05, max_restart_delay=0.1)

    async def main() -> None:
        mon = ProcessMonitor(policy)
        mon.add_process("ghost", ["/nonexistent/program"])
        await mon.start()
        await until(lambda: sum(m.startswith("restarting ghost") for m in messages(caplog)) >= 2)
        await mon.stop()

    run(main())
    failed = [m for m in messages(caplog) if m.startswith("couldn't start ghost")]
    # The same failure again is counted, and the count logged when procmon stops.
    assert failed[0] == "couldn't start ghost (/nonexistent/program): No such file or directory"
    assert re.fullmatch(re.escape(failed[0]) + r" \(repeated \d+ times?\)", failed[1])
    assert len(failed) == 2


def test_children_reaped_no_zombies(run: Runner) -> None:
    async def main() -> list[int]:
        policy = RestartPolicy(threshold=10, min_restart_delay=0.01, max_restart_delay=0.02)
        mon = ProcessMonitor(policy)
        mon.add_process("blip", [sys.executable, "-c", "pass"])
        await mon.start()
        await until(lambda: mon.children["blip"].starts >= 4)
        await mon.stop()
        return [mon.children["blip"].last_pid]

    run(main())
    # Nothing this test process started is left as a zombie.
    me = os.getpid()
    zombies = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] == "Z":
                zombies.append(entry.name)
    assert zombies == []


def test_add_after_start_remove_env_and_cwd(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, run: Runner
) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")

    async def main() -> tuple[int, int | None]:
        mon = ProcessMonitor(RestartPolicy(killtime=2))
        await mon.start()
        mon.add_process(
            "late",
            ["sh", "-c", 'echo "$GREETING from $(pwd)"; exec sleep 60'],
            env={"GREETING": "hi"},
            cwd=str(tmp_path),
        )
        await until(lambda: f"late: hi from {tmp_path}" in messages(caplog))
        pid = mon.children["late"].last_pid
        await mon.remove_process("late")
        assert "late" not in mon.children
        with pytest.raises(ValueError, match="empty"):
            mon.add_process("nothing", [])
        await mon.stop()
        return pid, None

    pid, _ = run(main())
    assert not alive(pid)


def test_endless_line_is_logged_in_bounded_pieces(
    caplog: pytest.LogCaptureFixture, run: Runner
) -> None:
    caplog.set_level(logging.INFO, logger="tapster.procmon")
    code = (
        "import sys; sys.stdout.write('x' * 40000); sys.stdout.flush(); import time; time.sleep(30)"
    )

    async def main() -> None:
        mon = ProcessMonitor(RestartPolicy(killtime=2))
        mon.add_process("wide", [sys.executable, "-c", code])
        await mon.start()
        # Two full pieces arrive while the child still runs; the rest when its pipe closes.
        await until(lambda: sum(m.startswith("wide: x") for m in messages(caplog)) >= 2)
        await mon.stop()

    run(main())
    pieces = [m[len("wide: ") :] for m in messages(caplog) if m.startswith("wide: x")]
    assert [len(p) for p in pieces] == [16384, 16384, 40000 - 2 * 16384]
