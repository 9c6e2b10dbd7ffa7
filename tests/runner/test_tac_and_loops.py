"""``.tac`` files and event loop selection."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from support import free_port, run_tapster


def ask(port: int, line: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(line + b"\n")
        return conn.makefile("rb").readline().decode().strip()


def stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return err


def test_a_tac_file_runs_its_application(project: Path, tapster_proc, wait_listening) -> None:
    port = free_port()
    tac = project / "echo.tac"
    tac.write_text(
        "from tapster.service import Application\n"
        "from myproject import EchoService\n"
        "application = Application('echo-tac')\n"
        f"EchoService({port}).set_parent(application)\n"
    )
    proc = tapster_proc.start("-y", "echo.tac", cwd=project)
    wait_listening(proc, port)
    assert ask(port, b"hi") == "hi"
    err = stop(proc)
    assert "starting application 'echo-tac'" in err


def test_bad_tac_files_get_one_line_each(project: Path) -> None:
    files = {
        "none.tac": ("x = 1\n", "none.tac does not define 'application': add 'application = "),
        "syntax.tac": ("x = 1\nif x\n", "syntax.tac:2: syntax error: "),
        "raises.tac": ("x = 1\nundefined_name\n", "raises.tac:2: NameError: "),
        "wrong.tac": ("application = 42\n", "'application' is a int, not a tapster.service."),
    }
    for name, (text, words) in files.items():
        (project / name).write_text(text)
        result = run_tapster(["-y", name], cwd=project)
        assert result.returncode == 1, name
        assert len(result.stderr.splitlines()) == 1, (name, result.stderr)
        assert words in result.stderr, (name, result.stderr)
    result = run_tapster(["-y", "missing.tac"], cwd=project)
    assert result.returncode == 1
    assert result.stderr == "tapster: cannot read missing.tac: No such file or directory\n"


def test_loop_selection(project: Path, tapster_proc, wait_listening) -> None:
    expected = {
        "asyncio": "asyncio.unix_events._UnixSelectorEventLoop",
        "uvloop": "uvloop.Loop",
        "auto": "uvloop.Loop",  # uvloop is installed here
        "myproject.loops:make": "myproject.loops.MarkedLoop",
    }
    for spec, loop_class in expected.items():
        port = free_port()
        proc = tapster_proc.start("-r", spec, "myproject", "-p", str(port), cwd=project)
        wait_listening(proc, port)
        assert ask(port, b"loop") == loop_class, spec
        err = stop(proc)
        name = "uvloop" if spec == "auto" else spec
        assert f"loop {name}," in err
        if spec.startswith("myproject"):
            assert "custom loop made" in err


def test_broken_loop_factories_fail_at_start_up(project: Path) -> None:
    for spec, words in [
        ("no_such_module:make", "cannot import loop module 'no_such_module'"),
        ("myproject.loops:missing", "has no 'missing'"),
        ("myproject.loops:not_a_loop", "returned int, not a loop"),
    ]:
        result = run_tapster(["-r", spec, "myproject", "-p", "0"], cwd=project)
        assert result.returncode == 1, spec
        assert words in result.stderr, (spec, result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr
