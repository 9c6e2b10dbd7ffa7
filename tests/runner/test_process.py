"""Process details: title, systemd notification, shutdown budget, profiler."""

from __future__ import annotations

import pstats
import signal
import socket
import time
from pathlib import Path

import pytest
from support import free_port, run_tapster


def test_process_title_unless_originalname(project: Path, tapster_proc, wait_listening) -> None:
    port = free_port()
    proc = tapster_proc.start("myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().rstrip(b"\0") == b"tapster: myproject"
    port = free_port()
    proc = tapster_proc.start("--originalname", "myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    assert b"tapster: myproject" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()


def test_systemd_notify_ready_then_stopping(project: Path, tapster_proc, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(address)
        systemd.settimeout(10)
        port = free_port()
        proc = tapster_proc.start(
            "myproject", "-p", str(port), cwd=project, env={"NOTIFY_SOCKET": address}
        )
        ready = systemd.recv(4096).decode()
        # READY=1 is sent only once the port listens.
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert ready == (
            f"READY=1\nSTATUS=serving myproject on tcp:127.0.0.1:{port}\nMAINPID={proc.pid}"
        )
        proc.send_signal(signal.SIGTERM)
        stopping = b"STOPPING=1\nSTATUS=stopping myproject: draining (within 30 s)"
        assert systemd.recv(4096) == stopping
        proc.communicate(timeout=15)


def test_shutdown_timeout_bounds_a_stuck_stop(
    project: Path, tapster_proc, wait_listening, tmp_path: Path
) -> None:
    port = free_port()
    tac = tmp_path / "stuck.tac"
    tac.write_text(
        "import asyncio\n"
        "from tapster.service import Application, Service\n"
        "from myproject import EchoService\n"
        "class Stuck(Service):\n"
        "    name = 'stuck'\n"
        "    async def stop(self):\n"
        "        await asyncio.sleep(60)\n"
        "application = Application('stuck')\n"
        f"EchoService({port}).set_parent(application)\n"
        "Stuck().set_parent(application)\n"
    )
    proc = tapster_proc.start("--shutdown-timeout", "1", "-y", str(tac), cwd=project)
    wait_listening(proc, port)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    took = time.monotonic() - started
    assert proc.returncode == 0, err
    assert took < 6, took
    assert "stuck" in err and "did not stop within the shutdown budget" in err


def test_profile_text_report_and_saved_stats(project: Path, tapster_proc, wait_listening) -> None:
    for extra, check in [
        ([], lambda path: "function calls" in path.read_text()),
        (["--savestats"], lambda path: pstats.Stats(str(path)).total_calls > 0),
    ]:
        port = free_port()
        out = project / f"profile{len(extra)}.out"
        proc = tapster_proc.start(
            "--profile", str(out), *extra, "myproject", "-p", str(port), cwd=project
        )
        wait_listening(proc, port)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert check(out), extra


def test_nodaemon_and_daemon_together_is_a_usage_error(project: Path) -> None:
    result = run_tapster(["-n", "-D", "myproject"], cwd=project)
    assert result.returncode == 2
    assert "not both" in result.stderr


@pytest.mark.parametrize(
    ("fail", "where", "variable", "says"),
    [
        (
            "make-error",
            ("tapster/plugins/myproject_plugin.py", "make_service()"),
            'options["fail"]',
            "the configuration is wrong on purpose",
        ),
        ("bind-error", ("myproject/__init__.py", "privileged_start()"), "self.fail", "bind"),
        ("start-error", ("myproject/__init__.py", "start()"), "self.fail", "start failed"),
    ],
)
def test_debug_opens_the_debugger_in_the_failing_frame(
    project: Path, fail: str, where: tuple[str, str], variable: str, says: str
) -> None:
    # pdb reads its commands from stdin: print a variable of the frame it opened on.
    result = run_tapster(
        ["-b", "myproject", "-p", str(free_port()), "--fail", fail],
        cwd=project,
        input=f"p {variable}\nq\n",
    )
    assert result.returncode == 1
    # The frame pdb shows first is the user's line that raised, not tapster's re-raise ...
    path, function = where
    frame = next(line for line in result.stdout.splitlines() if line.startswith("> "))
    assert frame.startswith(f"> {project / path}(")
    assert frame.endswith(function)
    assert result.stdout.split(frame, 1)[1].lstrip().startswith("-> raise ")
    # ... and its variables are the user's.
    assert f"(Pdb) '{fail}'" in result.stdout
    assert says in result.stderr


def test_spew_prints_calls(project: Path, tapster_proc, wait_listening) -> None:
    port = free_port()
    proc = tapster_proc.start("--spew", "myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "myproject/__init__.py" in out and "EchoService.start" in out


def test_missing_chroot_directory_is_named(project: Path) -> None:
    result = run_tapster(["--chroot", "/no/such/jail", "myproject"], cwd=project)
    assert result.returncode == 1
    assert result.stderr == "tapster: the chroot directory /no/such/jail does not exist\n"
