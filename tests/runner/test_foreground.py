"""Running in the foreground: start, serve, log what started, stop on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from support import free_port, run_tapster


def echo(port: int, line: bytes = b"hello\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(line)
        return conn.makefile("rb").readline()


def test_foreground_serves_then_stops_gracefully_on_sigterm(
    project: Path, tapster_proc, wait_listening
) -> None:
    port = free_port()
    proc = tapster_proc.start("myproject", "--port", str(port), cwd=project)
    wait_listening(proc, port)
    assert echo(port) == b"hello\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    lines = err.splitlines()
    assert "tapster 0.1.0 on" in lines[0] and "loop " in lines[0]
    assert "starting application 'myproject'" in lines[1]
    assert f"listening on tcp:127.0.0.1:{port}" in lines[2]
    assert "SIGTERM received" in err
    assert "echo stopped" in err
    assert "Traceback" not in err


def test_sigint_stops_gracefully_too(project: Path, tapster_proc, wait_listening) -> None:
    port = free_port()
    proc = tapster_proc.start("-n", "myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "SIGINT received" in err


def test_port_in_use_is_one_line_and_status_1(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_tapster(["myproject", "-p", str(port)], cwd=project)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("tapster: cannot start myproject:")
    assert "in use" in result.stderr


def test_start_up_failures_are_one_line_with_status_1(project: Path) -> None:
    for fail, words in [
        ("make-error", "the configuration is wrong on purpose"),
        ("bind-error", "refusing to bind"),
        ("start-error", "start failed on purpose"),
    ]:
        result = run_tapster(["myproject", "-p", str(free_port()), "--fail", fail], cwd=project)
        assert result.returncode == 1, (fail, result.stderr)
        # Log lines (stderr is the log in the foreground) may come first; the
        # message is the last line, and the only line that is not a log line.
        last = result.stderr.splitlines()[-1]
        assert last.startswith("tapster: cannot "), (fail, result.stderr)
        assert words in last, fail
        if fail == "make-error":  # before the logs open: nothing else at all
            assert len(result.stderr.splitlines()) == 1
        assert "Traceback" not in result.stderr


KEYED_PLUGIN = """\
from tapster.service import ServiceMaker
from tapster.usage import Options


class KeyedMaker(ServiceMaker):
    tapname = "keyed"
    description = "Reads an option nobody declared."
    options = Options

    def make_service(self, options):
        return options["nokey"]


maker = KeyedMaker()
"""

PACKAGED_MAKER = """\
from tapster.service import ServiceMaker
from tapster.usage import Options

from packaged.config import load


class PackagedMaker(ServiceMaker):
    tapname = "packaged"
    description = "Its code lives in a package."
    options = Options

    def make_service(self, options):
        return load()


maker = PackagedMaker()
"""


def test_a_failing_make_service_names_the_error_type_and_the_plugin_line(tmp_path: Path) -> None:
    plugins = tmp_path / "tapster" / "plugins"
    plugins.mkdir(parents=True)
    keyed = plugins / "keyed.py"
    keyed.write_text(KEYED_PLUGIN)
    # The KeyError is raised inside tapster's Options; the line shown is the plugin's.
    result = run_tapster(["keyed"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"tapster: cannot build keyed: KeyError: 'nokey' (at {keyed}:11)\n"

    # A maker defined in a project's package: the innermost line in that package.
    (tmp_path / "packaged").mkdir()
    (tmp_path / "packaged" / "__init__.py").write_text("")
    (tmp_path / "packaged" / "maker.py").write_text(PACKAGED_MAKER)
    config = tmp_path / "packaged" / "config.py"
    config.write_text("import json\n\n\ndef load():\n    return json.loads('{')\n")
    (plugins / "packaged_plugin.py").write_text("from packaged.maker import maker\n")
    result = run_tapster(["packaged"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("tapster: cannot build packaged: JSONDecodeError: ")
    assert result.stderr.endswith(f" (at {config}:5)\n")
    assert len(result.stderr.splitlines()) == 1


def test_traceback_goes_to_the_log_at_debug_level_only(project: Path) -> None:
    result = run_tapster(
        ["--log-level", "debug", "myproject", "-p", str(free_port()), "--fail", "make-error"],
        cwd=project,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "the configuration is wrong on purpose (at " in result.stderr.splitlines()[-1]


def test_second_sigint_forces_exit(
    project: Path, tapster_proc, tmp_path: Path, wait_listening
) -> None:
    # A .tac whose service takes forever to stop.
    port = free_port()
    tac = tmp_path / "slow.tac"
    tac.write_text(
        "import asyncio\n"
        "from tapster.service import Application, Service\n"
        "from myproject import EchoService\n"
        "class Slow(Service):\n"
        "    async def stop(self):\n"
        "        while True:  # ignores cancellation too\n"
        "            try:\n"
        "                await asyncio.sleep(60)\n"
        "            except asyncio.CancelledError:\n"
        "                pass\n"
        "application = Application('slow')\n"
        f"EchoService({port}).set_parent(application)\n"
        "Slow().set_parent(application)\n"
    )
    proc = tapster_proc.start("--pidfile", "slow.pid", "-y", str(tac), cwd=project)
    wait_listening(proc, port)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert "second SIGINT" in err
    assert not (project / "slow.pid").exists()
