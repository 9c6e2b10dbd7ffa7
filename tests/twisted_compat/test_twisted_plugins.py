"""Existing twistd plugins, unchanged, under tapster (issue 20).

The seed's MyProject (``data/MyProject``: its two plugins as the seed writes
them, with what it leaves out filled in) is copied to a temporary folder and
run with real ``tapster`` subprocesses; ``XDG_CACHE_HOME`` is private to
each test, so each starts with a cold Twisted plugin cache.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support import free_port, run_tapster, wait_for_port

pytest.importorskip("twisted")

DATA = Path(__file__).parent / "data" / "MyProject"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "MyProject"
    shutil.copytree(DATA, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "xdg")}


def _twisted_plugin_folder() -> Path:
    import twisted

    return Path(twisted.__file__).parent / "plugins"


def _commands(help_text: str) -> list[str]:
    listing = help_text.split("Commands:", 1)[1]
    return [line.split()[0] for line in listing.splitlines() if line[2:3].strip()]


def _wait_for(pattern: str, proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """Read ``proc``'s stderr until a line holds ``pattern``; return what was read."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if pattern in line:
            return seen
    raise AssertionError(f"{pattern!r} not logged; got:\n{seen}")


def _line(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        return conn.makefile("rb").readline()


def test_help_lists_twisted_plugins_and_warm_help_imports_neither(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    own = _twisted_plugin_folder()
    before = sorted(p.name for p in own.iterdir())
    cold = run_tapster(["--help"], cwd=project, env=env)
    assert cold.returncode == 0, cold.stderr
    commands = _commands(cold.stdout)
    # The seed's plugins, Twisted's own, and Twisted's web beside (not instead of) tapster's.
    for name in ("myproject", "myserver", "web", "twisted-web", "portforward"):
        assert name in commands
    assert "twisted-portforward" in commands and "twisted-procmon" in commands
    assert "Run this! It'll make your dog happy." in cold.stdout
    # tapster's own JSON cache in the user's cache folder; nothing written beside Twisted's.
    assert list((tmp_path / "xdg" / "tapster").glob("twisted-*.json"))
    assert sorted(p.name for p in own.iterdir()) == before
    assert not (project / "twisted" / "plugins" / "dropin.cache").exists()
    code = (
        "import sys\n"
        "from tapster.runner import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "finally:\n"
        "    bad = [m for m in sys.modules if m.split('.')[0] in "
        "('twisted', 'zope', 'myproject', 'myserver', 'asyncio', 'logging')]\n"
        "    sys.stderr.write(repr(bad))\n"
    )
    warm = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "myproject" in warm.stdout and "twisted-web" in warm.stdout
    assert warm.stderr.strip() == "[]"


def test_myproject_served_and_stopped_by_sigterm(
    project: Path, env: dict[str, str], tapster_proc
) -> None:
    port = free_port()
    proc = tapster_proc.start("myproject", "--port", str(port), cwd=project, env=env)
    seen = _wait_for("ready", proc)
    assert f"listening on tcp:0.0.0.0:{port}" in seen
    assert _line(port, b"hello\n") == b"hello\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    # Twisted's log messages are in tapster's log.
    assert "twisted: myproject: connection from 127.0.0.1" in seen + err
    assert f"(TCP Port {port} Closed)" in err
    assert "application 'myproject' stopped" in err


def test_plugin_options_are_twisteds(project: Path, env: dict[str, str]) -> None:
    shown = run_tapster(["myproject", "--help"], cwd=project, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "--port=" in shown.stdout and "The port number to listen on." in shown.stdout
    bad = run_tapster(["myproject", "--nope"], cwd=project, env=env)
    assert bad.returncode == 2
    assert "option --nope not recognized" in bad.stderr
    assert "Traceback" not in bad.stderr
    auth = run_tapster(["myserver", "--help-auth"], cwd=project, env=env)
    assert auth.returncode == 0, auth.stderr
    assert "memory" in auth.stdout and "file" in auth.stdout
    kind = run_tapster(["myserver", "--help-auth-type", "memory"], cwd=project, env=env)
    assert kind.returncode == 0, kind.stderr
    assert "--auth memory[:ArgString]" in kind.stdout


@pytest.mark.parametrize("runner", ["tapster", "twistd"])
@pytest.mark.parametrize("source", ["memory", "file"])
def test_myserver_logins(
    source: str, runner: str, project: Path, env: dict[str, str], tapster_proc, tmp_path: Path
) -> None:
    """The strcred plugin's logins, under tapster and (the reference) under twistd."""
    if source == "memory":
        auth = "memory:alice:secret"
    else:
        users = tmp_path / "users.txt"
        users.write_text("alice:secret\nbob:other\n")
        auth = f"file:{users}"
    port = free_port()
    args = ("myserver", "--port", str(port), "--auth", auth)
    if runner == "tapster":
        proc = tapster_proc.start(*args, cwd=project, env=env)
        _wait_for("ready", proc)
    else:
        twistd = str(Path(sys.executable).parent / "twistd")
        proc = subprocess.Popen(
            [twistd, "-n", "--pidfile=", *args],
            cwd=project,
            env={**os.environ, **env, "PYTHONPATH": str(project)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        tapster_proc.procs.append(proc)
        wait_for_port(port)
    assert _line(port, b"LOGIN alice secret\n") == b"OK localhost alice\n"
    assert _line(port, b"LOGIN alice wrong\n") == b"FAIL\n"
    assert _line(port, b"LOGIN nobody secret\n") == b"FAIL\n"


def test_daemon_with_pidfile_and_sigterm(project: Path, env: dict[str, str]) -> None:
    port = free_port()
    pidfile = project / "run.pid"
    started = run_tapster(
        ["-D", "--pidfile", str(pidfile), "--logfile", "app.log", "myproject", "--port", str(port)],
        cwd=project,
        env=env,
    )
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        # Ready means listening: the launcher returned only then.
        assert _line(port, b"daemon\n") == b"daemon\n"
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pidfile.exists()
    log = (project / "app.log").read_text()
    assert f"listening on tcp:0.0.0.0:{port}" in log
    assert "application 'myproject' stopped" in log


def test_twisted_web_serves_a_folder(
    project: Path, env: dict[str, str], tapster_proc, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello from twisted web\n")
    port = free_port()
    proc = tapster_proc.start(
        "twisted-web",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        "--path",
        ".",
        cwd=site,
        env=env,
    )
    seen = _wait_for("ready", proc)
    assert f"listening on tcp:127.0.0.1:{port}" in seen
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10) as reply:
        assert reply.read() == b"hello from twisted web\n"
        assert "TwistedWeb" in reply.headers["Server"]


def test_broken_twisted_plugin_reported_in_one_line(project: Path, env: dict[str, str]) -> None:
    (project / "twisted" / "plugins" / "boom.py").write_text("x = 1\ny = x / 0\n")
    listed = run_tapster(["--plugins"], cwd=project, env=env)
    assert listed.returncode == 1
    assert "broken: Twisted plugin module twisted.plugins.boom" in listed.stdout
    assert "ZeroDivisionError: division by zero (line 2)" in listed.stdout
    helped = run_tapster(["--help"], cwd=project, env=env)
    assert helped.returncode == 0
    assert "myproject" in _commands(helped.stdout)
    assert helped.stderr.count("twisted.plugins.boom") == 1
    for text in (listed.stdout, listed.stderr, helped.stderr):
        assert "Traceback" not in text


def test_bind_failure_is_one_line(project: Path, env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_tapster(["myproject", "--port", str(port)], cwd=project, env=env)
    assert result.returncode == 1
    assert "cannot start myproject" in result.stderr
    assert "Traceback" not in result.stderr


def test_rebuild_plugin_cache_rescans_twisted_plugins(project: Path, env: dict[str, str]) -> None:
    """The Twisted listing is cached by its plugin files' stamps; a change elsewhere (a module
    a plugin imports its description from) shows after ``--rebuild-plugin-cache``."""
    (project / "extrahelp.py").write_text('DESCRIPTION = "first words"\n')
    (project / "twisted" / "plugins" / "extra_plugin.py").write_text(
        "from zope.interface import implementer\n"
        "from twisted.application.service import IServiceMaker\n"
        "from twisted.plugin import IPlugin\n"
        "from twisted.python import usage\n"
        "import extrahelp\n\n"
        "@implementer(IServiceMaker, IPlugin)\n"
        "class Maker:\n"
        "    tapname = 'extra'\n"
        "    description = extrahelp.DESCRIPTION\n"
        "    options = usage.Options\n"
        "    def makeService(self, options):\n"
        "        raise NotImplementedError\n\n"
        "maker = Maker()\n"
    )
    assert "first words" in run_tapster(["--help"], cwd=project, env=env).stdout
    (project / "extrahelp.py").write_text('DESCRIPTION = "second words"\n')
    assert "first words" in run_tapster(["--help"], cwd=project, env=env).stdout  # cached
    rebuilt = run_tapster(["--rebuild-plugin-cache"], cwd=project, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "twisted-" in rebuilt.stdout, rebuilt.stdout
    assert "second words" in run_tapster(["--help"], cwd=project, env=env).stdout
