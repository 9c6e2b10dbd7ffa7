"""docs/guide.md, followed literally: its files are the example's files, its commands run.

The guide is read as a script. A fenced block after ``<!-- file: PATH -->`` must
equal that file of the repository. In ``console`` blocks, ``$ `` lines are
commands, run by bash in a fresh folder whose virtual environment has tapster
installed from this checkout; the lines after a command are output it must
print, in order (``...`` stands for lines not shown). A console block after
``<!-- background: PORT -->`` starts a server that must listen on PORT; it is
stopped with SIGTERM at the end of its section. The Dockerfile after
``<!-- container -->`` has its ``CMD`` run the way a container runtime would.
The guide's port numbers are swapped for free ones in the commands it runs.

The four tests follow the seed's four outcomes: create a plugin, use it from
the development folder, add authentication, install and deploy it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import ROOT, ensure_tool, free_port, wait_for_port

GUIDE = ROOT / "docs" / "guide.md"
EXAMPLE = ROOT / "examples" / "myproject"
GUIDE_PORTS = ("1234", "1235")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass
class Block:
    """One fenced block of the guide, with the marker comment before it (if any)."""

    lang: str
    text: str
    marker: str | None


def guide_sections() -> dict[str, list[Block]]:
    """The guide's fenced blocks, grouped by their ``## N.`` section number."""
    sections: dict[str, list[Block]] = {}
    current = "0"
    marker: str | None = None
    lines = GUIDE.read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"## (\d+)\.", line)
        if heading:
            current = heading.group(1)
        comment = re.match(r"<!-- (.*?) -->", line)
        if comment:
            marker = comment.group(1)
        elif line.startswith("```"):
            lang = line[3:].strip()
            body: list[str] = []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            sections.setdefault(current, []).append(Block(lang, "".join(body), marker))
            marker = None
        elif line.strip():
            marker = None
        i += 1
    return sections


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` for each ``$ `` line of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps and line.strip() and line.strip() != "...":
            steps[-1][1].append(line.rstrip())
    return steps


def assert_lines_in_order(expected: list[str], output: str, command: str) -> None:
    got = [line.rstrip() for line in output.splitlines()]
    position = 0
    for want in expected:
        try:
            position = got.index(want, position) + 1
        except ValueError:
            pytest.fail(f"`{command}` did not print {want!r} (in order); it printed:\n{output}")


@dataclass
class Shell:
    """The reader's terminal: a working folder, a venv on PATH, servers in the background."""

    home: Path
    cwd: Path
    env: dict[str, str]
    ports: dict[str, str]
    servers: list[subprocess.Popen[str]] = field(default_factory=list)

    def swap_ports(self, text: str) -> str:
        for old, new in self.ports.items():
            text = re.sub(rf"\b{old}\b", new, text)
        return text

    def run(self, command: str, expected: list[str]) -> None:
        command = self.swap_ports(command)
        if command.startswith("cd "):
            self.cwd = (self.cwd / command[3:].strip()).resolve()
            return
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{output}"
        assert_lines_in_order(expected, result.stdout, command)

    def serve(self, argv: list[str] | str, port: str) -> subprocess.Popen[str]:
        args = ["bash", "-c", f"exec {self.swap_ports(argv)}"] if isinstance(argv, str) else argv
        proc = subprocess.Popen(
            args,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.servers.append(proc)
        try:
            wait_for_port(int(self.ports[port]), timeout=30)
        except TimeoutError:
            self.stop_servers()
            printed = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"{args} never listened on {port}:\n{printed}")
        return proc

    def stop_servers(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.servers.clear()

    def follow(self, blocks: list[Block]) -> None:
        """Run every console block of one section, as the guide says."""
        try:
            for block in blocks:
                if block.lang != "console":
                    continue
                if block.marker and block.marker.startswith("background:"):
                    ((command, _),) = console_steps(block.text)
                    self.serve(command, block.marker.split(":", 1)[1].strip())
                    continue
                for command, expected in console_steps(block.text):
                    self.run(command, expected)
        finally:
            self.stop_servers()


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    """A fresh folder with the example project and a venv with tapster installed."""
    if ensure_tool("nc", "netcat-openbsd") is None:
        pytest.skip("the guide talks to its servers with nc: install netcat-openbsd")
    base = tmp_path_factory.mktemp("guide")
    shutil.copytree(
        EXAMPLE,
        base / "MyProject",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".tapster-plugin-cache.json"),
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(ROOT)],
        check=True,
        capture_output=True,
    )
    home = base / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "XDG_CACHE_HOME"}
    }
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", HOME=str(home))
    ports = {port: str(free_port()) for port in GUIDE_PORTS}
    yield Shell(home=home, cwd=base, env=env, ports=ports)


SECTIONS = guide_sections()


def test_create_the_plugin(shell: Shell) -> None:
    """Outcome 1: the guide's files are the example's, laid out as a drop-in folder."""
    files = [b for b in SECTIONS["1"] + SECTIONS["2"] + SECTIONS["3"] + SECTIONS["4"] if b.marker]
    shown = {
        b.marker.split(":", 1)[1].strip(): b.text for b in files if b.marker.startswith("file:")
    }
    assert len(shown) == 5
    for path, text in shown.items():
        assert (ROOT / path).read_text() == text, f"docs/guide.md shows an outdated {path}"
    plugin_dir = shell.cwd / "MyProject" / "tapster" / "plugins"
    assert (plugin_dir / "myproject_plugin.py").is_file()
    assert not (plugin_dir / "__init__.py").exists()
    assert not (plugin_dir.parent / "__init__.py").exists()


def test_use_it_from_the_development_folder(shell: Shell) -> None:
    """Outcome 3: `tapster --help` lists it and `tapster -n myproject` serves, no install."""
    shell.follow(SECTIONS["2"])


def test_incorporate_authentication(shell: Shell) -> None:
    """Outcome 2: --help-auth, --help-auth-type, a hashed password file, real logins."""
    shell.follow(SECTIONS["3"])
    passwd = (shell.cwd / "kennel.passwd").read_text()
    assert passwd.startswith("alice:$argon2id$"), "tapster-passwd must store an argon2id hash"
    assert "hunter2" not in passwd


def test_install_and_deploy(shell: Shell) -> None:
    """Outcome 4: a wheel with the drop-in module, the cache rebuild, systemd, a container."""
    shell.follow(SECTIONS["4"])
    (container,) = [b for b in SECTIONS["4"] if b.marker == "container"]
    cmd_line = next(line for line in container.text.splitlines() if line.startswith("CMD "))
    argv = [shell.swap_ports(arg) for arg in json.loads(cmd_line[4:])]
    shell.cwd = Path("/")
    proc = shell.serve(argv, "1235")
    try:
        reply = subprocess.run(
            ["nc", "127.0.0.1", shell.ports["1235"]],
            input="PET\r\nQUIT\r\n",
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        assert "Rex wags (happiness 1)" in reply
        proc.send_signal(signal.SIGTERM)  # what `docker stop` sends
        assert proc.wait(timeout=20) == 0
    finally:
        shell.stop_servers()
