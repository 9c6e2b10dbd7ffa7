"""The packaging round trip: wheels of example plugin projects, installed in a fresh venv.

One project ships a drop-in module (``tapster/plugins/greeter_plugin.py``
inside its wheel, without an ``__init__.py``), the other an entry point.
Both wheels, and tapster's own, are built here without network access and
installed into a new virtual environment; its ``tapster`` must list both
commands and run them. The ``tapster`` command is tapster's own launcher
(``scripts/tapster``), not a generated wrapper: installed from a wheel and
from an editable wheel, it must point at the venv's interpreter and import
no ``re``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
from support import ROOT, free_port, wait_for_port

pytestmark = pytest.mark.slow

GREETER = {
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "greeter"
        version = "1.0"
        dependencies = ["tapster"]

        # Ship the package AND the drop-in module; "sources" maps src/ to the
        # wheel's root, so the module lands in tapster/plugins/ next to
        # tapster's own built-in plugins. No tapster/__init__.py and no
        # tapster/plugins/__init__.py in this project: installing them would
        # overwrite tapster's own.
        [tool.hatch.build.targets.wheel]
        only-include = ["src/greeter", "src/tapster/plugins/greeter_plugin.py"]
        sources = ["src"]
        """,
    "src/greeter/__init__.py": """
        from tapster.internet import TCPServer
        from tapster.usage import Options, port


        class GreeterOptions(Options):
            parameters = [("port", "p", 8123, "TCP port to listen on.", port)]


        async def greet(reader, writer):
            writer.write(b"hello from greeter\\n")
            await writer.drain()
            writer.close()


        def make_service(options):
            return TCPServer(options["port"], greet, interface="127.0.0.1")
        """,
    "src/tapster/plugins/greeter_plugin.py": """
        from tapster.service import ServiceMaker

        import greeter


        class GreeterMaker(ServiceMaker):
            tapname = "greet"
            description = "Say hello to every TCP client."
            options = greeter.GreeterOptions

            def make_service(self, options):
                return greeter.make_service(options)


        maker = GreeterMaker()
        """,
}

HELLO_EP = {
    "pyproject.toml": """
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "hello-ep"
        version = "2.0"
        dependencies = ["tapster"]

        [project.entry-points."tapster.plugins"]
        hello = "hello_ep.plugin:maker"

        [tool.hatch.build.targets.wheel]
        packages = ["src/hello_ep"]
        """,
    "src/hello_ep/__init__.py": "",
    "src/hello_ep/plugin.py": """
        from tapster.internet import TCPServer
        from tapster.service import ServiceMaker
        from tapster.usage import Options, port


        class HelloOptions(Options):
            parameters = [("port", "p", 8124, "TCP port to listen on.", port)]


        async def hello(reader, writer):
            writer.write(b"hello from an entry point\\n")
            await writer.drain()
            writer.close()


        class HelloMaker(ServiceMaker):
            tapname = "hello"
            description = "Say hello, from an entry point."
            options = HelloOptions

            def make_service(self, options):
                return TCPServer(options["port"], hello, interface="127.0.0.1")


        maker = HelloMaker()
        """,
}


def write_project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def build_wheel(project: Path, out: Path) -> Path:
    """Build offline with the hatchling of the test environment."""
    before = set(out.glob("*.whl"))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=project,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = set(out.glob("*.whl")) - before
    return wheel


def workspace(tmp_path_factory, name: str) -> tuple[Path, Path, Path]:
    """``(work, wheels, tree)``: a scratch folder, its wheel folder, a copy of tapster's tree.

    Builds start from the copy: never build inside the shared checkout.
    """
    work = tmp_path_factory.mktemp(name)
    wheels = work / "wheels"
    wheels.mkdir()
    tree = work / "tapster-src"
    shutil.copytree(
        ROOT,
        tree,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", "bench", "tests", ".*cache*", "dist", "build"
        ),
    )
    return work, wheels, tree


def new_venv(env: Path, wheels: Path, *names: str) -> Path:
    """A venv without pip, ``names`` installed offline from ``wheels``; returns its site dir."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"),
            "install", "--quiet", "--no-index", "--no-deps", "--find-links", str(wheels),
            *names,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    # tapster's third-party dependencies come from the test environment, read-only
    # (added after installing, so that pip does not take its tapster for ours).
    (site / "test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return site


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv with tapster and both example projects installed from wheels."""
    work, wheels, tree = workspace(tmp_path_factory, "packaging")
    tapster_wheel = build_wheel(tree, wheels)
    assert "tapster-0.1.0.data/scripts/tapster" in zipfile.ZipFile(tapster_wheel).namelist()
    greeter = build_wheel(write_project(work / "greeter", GREETER), wheels)
    build_wheel(write_project(work / "hello-ep", HELLO_EP), wheels)

    names = zipfile.ZipFile(greeter).namelist()
    assert "tapster/plugins/greeter_plugin.py" in names
    assert "tapster/plugins/__init__.py" not in names and "tapster/__init__.py" not in names

    env = work / "venv"
    new_venv(env, wheels, "tapster", "greeter", "hello-ep")
    return env


@pytest.fixture(scope="module")
def editable_venv(tmp_path_factory):
    """A fresh venv with tapster installed editable (PEP 660, as ``pip install -e`` does)."""
    work, wheels, tree = workspace(tmp_path_factory, "editable")
    build = "import sys; from hatchling.build import build_editable; build_editable(sys.argv[1])"
    subprocess.run(
        [sys.executable, "-c", build, str(wheels)],
        cwd=tree,
        check=True,
        capture_output=True,
        timeout=120,
    )
    new_venv(work / "venv", wheels, "tapster")
    return work / "venv", tree


def run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XDG_CACHE_HOME"] = str(venv / "xdg")
    return subprocess.run(
        [str(venv / "bin" / "tapster"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=venv,
        timeout=60,
        check=False,
    )


def test_the_installed_tapster_is_the_wheel(venv):
    code = "import tapster.plugin, tapster.plugins as p; print(tapster.plugin.__file__, p.__path__)"
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    assert str(venv) in proc.stdout and str(ROOT / "src") not in proc.stdout


def test_help_lists_both_plugins_and_the_second_run_is_cached(venv):
    for _ in range(2):
        result = run(venv, "--help")
        assert result.returncode == 0, result.stderr
        assert "greet" in result.stdout and "Say hello to every TCP client." in result.stdout
        assert "hello" in result.stdout and "Say hello, from an entry point." in result.stdout
    report = run(venv, "--plugins")
    assert report.returncode == 0, report.stdout + report.stderr
    assert "greeter_plugin.py (cached)" in report.stdout
    assert "hello-ep 2.0 entry point hello (cached)" in report.stdout


@pytest.mark.parametrize(
    ("command", "greeting"),
    [("greet", b"hello from greeter\n"), ("hello", b"hello from an entry point\n")],
)
def test_each_plugin_runs(venv, command, greeting):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XDG_CACHE_HOME"] = str(venv / "xdg")
    proc = subprocess.Popen(
        [str(venv / "bin" / "tapster"), command, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=venv,
    )
    try:
        wait_for_port(port, timeout=20)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            assert conn.makefile("rb").readline() == greeting
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_launcher(env: Path) -> None:
    """``env``'s ``tapster`` is the launcher: its interpreter is ``env``'s, it imports no ``re``."""
    script = env / "bin" / "tapster"
    assert os.access(script, os.X_OK)
    first = script.read_text().splitlines()[0]
    assert first.startswith(f"#!{env}/bin/python"), first
    for _ in range(2):  # the second run: the plugin caches are warm
        proc = subprocess.run(
            [str(env / "bin" / "python"), "-X", "importtime", str(script), "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "XDG_CACHE_HOME": str(env / "xdg")},
            cwd=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: tapster [options]")
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "tapster.runner" in imported
    assert "re" not in imported and "enum" not in imported


def test_the_wheel_installs_the_launcher_and_tapster_passwd(venv):
    check_launcher(venv)
    proc = subprocess.run(
        [str(venv / "bin" / "tapster-passwd"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: tapster-passwd")


def test_an_editable_install_has_the_launcher_too(editable_venv):
    env, tree = editable_venv
    check_launcher(env)
    code = "import tapster; print(tapster.__file__)"
    proc = subprocess.run(
        [str(env / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == str(tree / "src" / "tapster" / "__init__.py")
