"""The start-up order, step by step (docs/runner.md, "Start-up order")."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import time
from pathlib import Path

import pytest
from support import free_port, run_tapster

ORDER_PLUGIN = """
import logging
import os

from tapster.service import ServiceMaker
from tapster.usage import Options, port

log = logging.getLogger("tapster.test.order")


class OrderOptions(Options):
    parameters = [("port", "p", 0, "Port.", port), ("marker", None, "", "File to touch.")]


class OrderMaker(ServiceMaker):
    tapname = "order"
    description = "Records when make_service runs."
    options = OrderOptions

    def make_service(self, options):
        from myproject import EchoService

        if options["marker"]:
            with open(options["marker"], "a") as stream:
                stream.write(f"built {os.getpid()}\\n")
        log.info("make_service ran as euid %d in %s", os.geteuid(), os.getcwd())
        return EchoService(options["port"])


order_maker = OrderMaker()
"""


@pytest.fixture
def order_project(project: Path) -> Path:
    (project / "tapster" / "plugins" / "order_plugin.py").write_text(ORDER_PLUGIN)
    return project


def test_step2_pidfile_checked_before_the_application_is_built(
    order_project: Path, tapster_proc, wait_listening, tmp_path: Path
) -> None:
    port = free_port()
    first = tapster_proc.start("--pidfile", "app.pid", "order", "-p", str(port), cwd=order_project)
    wait_listening(first, port)
    marker = tmp_path / "marker"
    second = run_tapster(
        ["--pidfile", "app.pid", "order", "-p", str(free_port()), "--marker", str(marker)],
        cwd=order_project,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert not marker.exists()  # make_service never ran


def test_step2_pidfile_path_resolved_against_rundir(
    order_project: Path, tapster_proc, wait_listening, tmp_path: Path
) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir()
    port = free_port()
    proc = tapster_proc.start(
        "-d", str(rundir), "--pidfile", "app.pid", "order", "-p", str(port), cwd=order_project
    )
    wait_listening(proc, port)
    assert (rundir / "app.pid").read_text() == f"{proc.pid}\n"
    assert not (order_project / "app.pid").exists()


def test_step3_builds_before_logs_and_its_lines_reach_the_log(
    order_project: Path, tapster_proc, wait_listening, tmp_path: Path
) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir()
    port = free_port()
    proc = tapster_proc.start(
        "-d", str(rundir), "-l", "app.log", "order", "-p", str(port), cwd=order_project
    )
    wait_listening(proc, port)
    log = (rundir / "app.log").read_text()
    # Built in the launch directory (before the chdir of step 4), logged once the log opened.
    assert f"make_service ran as euid {os.geteuid()} in {order_project}" in log
    assert log.index("make_service ran") < log.index("tapster 0.1.0 on")
    assert Path(f"/proc/{proc.pid}/cwd").resolve() == rundir.resolve()


def test_step4_log_failure_happens_after_the_build(order_project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    result = run_tapster(
        ["-l", "/no/such/dir/x.log", "order", "--marker", str(marker)], cwd=order_project
    )
    assert result.returncode == 1
    assert "cannot open log file" in result.stderr
    assert marker.read_text().startswith("built ")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_step6_binds_as_root_below_1024_then_drops(
    order_project: Path, tapster_proc, wait_listening
) -> None:
    low = None
    for candidate in range(1020, 900, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            low = candidate
            break
    assert low is not None
    proc = tapster_proc.start("-u", "nobody", "order", "-p", str(low), cwd=order_project)
    wait_listening(proc, low)
    with socket.create_connection(("127.0.0.1", low), timeout=5) as conn:
        conn.sendall(b"whoami\n")
        uid = conn.makefile("rb").readline().split()[0]
    assert int(uid) == pwd.getpwnam("nobody").pw_uid
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert "make_service ran as euid 0" in err  # step 3 ran as the launching user


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_chroot_pidfile_inside_the_new_root(
    order_project: Path, tapster_proc, wait_listening, tmp_path: Path
) -> None:
    jail = tmp_path / "jail"
    (jail / "run").mkdir(parents=True)
    port = free_port()
    proc = tapster_proc.start(
        "--chroot", str(jail), "-d", "/run", "--pidfile", "app.pid", "-l", "app.log",
        "--log-format", "json", "-r", "uvloop", "order", "-p", str(port), cwd=order_project,
    )  # fmt: skip
    wait_listening(proc, port)
    assert (jail / "run" / "app.pid").read_text() == f"{proc.pid}\n"
    assert Path(f"/proc/{proc.pid}/root").resolve() == jail.resolve()
    (jail / "run" / "app.log").rename(jail / "run" / "app.log.1")
    proc.send_signal(signal.SIGUSR1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert not (jail / "run" / "app.pid").exists()
    text = (jail / "run" / "app.log.1").read_text() + (jail / "run" / "app.log").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert any("loop uvloop" in record["message"] for record in records)
    assert "stopped" in records[-1]["message"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_daemon_in_a_chroot_success_and_death_leave_no_pidfile(
    project: Path, tmp_path: Path
) -> None:
    jail = tmp_path / "jail"
    (jail / "run").mkdir(parents=True)
    port = free_port()
    common = ["-D", "--chroot", str(jail), "-d", "/run", "myproject", "-p", str(port)]
    result = run_tapster([*common, "--fail", "die"], cwd=project)
    assert result.returncode == 1
    assert "before it reported ready" in result.stderr
    assert not (jail / "run" / "tapster.pid").exists()
    result = run_tapster(common, cwd=project)
    assert result.returncode == 0, result.stderr
    pidfile = jail / "run" / "tapster.pid"
    pid = int(pidfile.read_text())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"hi\n")
        assert conn.makefile("rb").readline() == b"hi\n"
    os.kill(pid, signal.SIGTERM)
    for _ in range(1000):
        if not pidfile.exists():
            break
        time.sleep(0.01)
    assert not pidfile.exists()
    assert "stopped" in (jail / "run" / "tapster.log").read_text()
