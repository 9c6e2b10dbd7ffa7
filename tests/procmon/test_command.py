"""``tapster procmon`` as a user runs it: the real command, real children, real signals."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import run_tapster, tapster_cmd, tapster_env


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append((int(entry.name), fields[0]))
    return found


def test_logs_restarts_and_stops_everything(tapster_proc, tmp_path: Path) -> None:
    log = tmp_path / "procmon.log"
    proc = tapster_proc.start(
        "--logfile",
        str(log),
        "procmon",
        "--threshold=10",
        "--minrestartdelay=0.2",
        "--maxrestartdelay=0.4",
        "--killtime=2",
        "--command",
        "greeter=sh -c 'echo hello from greeter; echo grumble >&2; exit 4'",
        "--command",
        "tree=sh -c 'sleep 60 & echo kid $!; sleep 60 & echo kid $!; wait'",
    )
    text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
    wait_for(lambda: text().count("greeter: hello from greeter") >= 3 and "kid" in text())
    wait_for(lambda: text().count("tree: kid") == 2)
    body = text()
    assert "greeter (stderr): grumble" in body
    assert "exit status 4" in body
    assert "restarting greeter in 0.2 s" in body
    assert "restarting greeter in 0.4 s" in body
    kids = [int(k) for k in re.findall(r"tree: kid (\d+)", body)]
    tree_pid = int(re.search(r"started tree \(pid (\d+)\)", body).group(1))  # type: ignore[union-attr]
    assert all(alive(p) for p in [*kids, tree_pid])

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert [p for p in [*kids, tree_pid] if alive(p)] == []
    assert children_of(proc.pid) == []
    assert "stopped tree" in log.read_text()


def test_child_ignoring_sigterm_is_killed_after_killtime(tapster_proc, tmp_path: Path) -> None:
    log = tmp_path / "procmon.log"
    proc = tapster_proc.start(
        "--logfile",
        str(log),
        "procmon",
        "--killtime",
        "0.8",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.1; done",
    )
    text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
    wait_for(lambda: "sh: ready" in text())
    child = int(re.search(r"started sh \(pid (\d+)\)", text()).group(1))  # type: ignore[union-attr]
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    took = time.monotonic() - began
    assert 0.7 <= took < 5
    body = log.read_text()
    assert "did not stop within 0.8 s of SIGTERM; sending SIGKILL" in body
    assert "killed by SIGKILL" in body
    assert not alive(child)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time used so far by process ``pid`` (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_within_a_second(proc: subprocess.Popen[str]) -> None:
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - began < 1.0


def test_command_that_cannot_start_backs_off_even_with_zero_threshold(
    tapster_proc, tmp_path: Path
) -> None:
    # -t 0 makes every run stable; a start that failed is no run at all, so it
    # must still wait --minrestartdelay, doubling up to --maxrestartdelay.
    log = tmp_path / "procmon.log"
    proc = tapster_proc.start(
        "--logfile", str(log), "procmon", "-t", "0", "-m", "0.1", "-M", "0.2", "/nonexistent/x"
    )
    text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
    wait_for(lambda: "ready" in text())
    began, cpu_before = time.monotonic(), cpu_seconds(proc.pid)
    time.sleep(1.5)
    cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - began)
    stop_within_a_second(proc)
    body = log.read_text()
    lines = body.splitlines()
    failed = "couldn't start x (/nonexistent/x): No such file or directory"
    assert next(line for line in lines if failed in line).endswith(failed)
    assert "restarting x in 0.1 s" in body
    assert "restarting x in 0.2 s" in body
    # Failures at 0, 0.1, 0.3, 0.5 ... s: about ten in the whole run, each
    # counted, the first logged and the rest in one line at the stop.
    repeats = int(re.search(rf"{re.escape(failed)} \(repeated (\d+) times\)", body).group(1))  # type: ignore[union-attr]
    assert 3 <= repeats <= 15
    assert sum(failed in line for line in lines) == 2
    assert len(lines) < 40
    assert cpu < 0.2


def test_sigterm_stops_procmon_restarting_without_any_delay(tapster_proc, tmp_path: Path) -> None:
    # No delay at all (-m 0 -M 0): procmon retries as fast as it can, and must
    # still handle SIGTERM at once and log the same failure only with a count.
    log = tmp_path / "procmon.log"
    proc = tapster_proc.start(
        "--logfile", str(log), "procmon", "-t", "0", "-m", "0", "-M", "0", "/nonexistent/x"
    )
    text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
    wait_for(lambda: "couldn't start x" in text())
    time.sleep(0.5)
    stop_within_a_second(proc)
    lines = log.read_text().splitlines()
    assert "stopped" in lines[-1]
    assert sum("couldn't start x" in line for line in lines) == 2
    assert len(lines) < 20


def test_usage_errors_are_one_line() -> None:
    result = run_tapster(["procmon"])
    assert result.returncode == 2
    assert "no command to run" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_tapster(["procmon", "--minrestartdelay", "9", "--maxrestartdelay", "1", "true"])
    assert result.returncode == 2
    assert "--minrestartdelay (9) is larger than --maxrestartdelay (1)" in result.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)"
)
def test_as_pid_1_orphans_are_reaped(tmp_path: Path) -> None:
    # Skip only when this host cannot make a PID namespace at all; once it can,
    # tapster failing in one is a failure of this test, not a reason to skip.
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", 'test "$$" = 1'],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot run in a new PID namespace here: {probe.stderr.decode()[-200:]}")
    log = tmp_path / "procmon.log"
    # In a new PID namespace tapster is PID 1: the backgrounded sleeps below are
    # orphaned at once and re-parented to it; only its reaper can collect them.
    script = "for i in 1 2 3; do (sleep 0.2 &); done; echo spawned; sleep 60"
    cmd = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        *tapster_cmd("--log-level", "debug", "--logfile", str(log), "procmon", "sh", "-c", script),
    ]
    outer = subprocess.Popen(cmd, env=tapster_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
        wait_for(lambda: "sh: spawned" in text() or outer.poll() is not None)
        if outer.poll() is not None:
            _, err = outer.communicate()
            status, said = outer.returncode, err.decode() + text()[-2000:]
            pytest.fail(f"tapster as PID 1 exited early with status {status}: {said}")
        wait_for(lambda: text().count("reaped orphan process") >= 3)
        # tapster's host PID is unshare's only child; none of its children is a zombie.
        (inner, _), *_ = children_of(outer.pid)
        time.sleep(0.3)
        assert [c for c in children_of(inner) if c[1] == "Z"] == []
        os.kill(inner, signal.SIGTERM)
        assert outer.wait(timeout=10) == 0
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()
