"""The real ``tapster`` command over plugins: --help, --plugins, --rebuild-plugin-cache."""

from __future__ import annotations

import os
import resource
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import SRC, python_for

MAKER = """
with open({counter!r}, "a") as f:
    f.write("imported\\n")

from tapster.service import Service, ServiceMaker
from tapster.usage import Options


class _Options(Options):
    parameters = [("port", "p", 0, "Port.", int)]


class _Maker(ServiceMaker):
    tapname = {name!r}
    description = {description!r}
    options = _Options

    def make_service(self, options):
        return Service()


maker = _Maker()
"""


def add_maker(sandbox, folder, name, description):
    counter = sandbox.root / f"{name}.count"
    source = MAKER.format(counter=str(counter), name=name, description=description)
    sandbox.module(folder, f"{name}_plugin", source)
    return counter


def tapster(sandbox, *args, importtime=False):
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "tapster"]
    return subprocess.run(
        [*command, *args],
        env=sandbox.env(),
        cwd=sandbox.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def imported_modules(stderr):
    """Module names from ``python -X importtime`` output."""
    names = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.append(line.rsplit("|", 1)[1].strip())
    return names


def test_help_lists_plugins_and_a_warm_help_imports_none_of_them(sandbox):
    folder = sandbox.folder("proj")
    alpha = add_maker(sandbox, folder, "alpha", "The alpha service.")
    beta = add_maker(sandbox, folder, "beta", "The beta service.")
    first = tapster(sandbox, "--help")
    assert first.returncode == 0, first.stderr
    assert "alpha" in first.stdout and "The alpha service." in first.stdout
    assert "beta" in first.stdout and "The beta service." in first.stdout
    assert alpha.read_text() == beta.read_text() == "imported\n"

    warm = tapster(sandbox, "--help", importtime=True)
    assert warm.returncode == 0
    assert "The beta service." in warm.stdout
    assert alpha.read_text() == beta.read_text() == "imported\n"
    modules = imported_modules(warm.stderr)
    assert "tapster.plugin" in modules
    plugin_modules = [m for m in modules if m.startswith("tapster.plugins.")]
    assert not [m for m in plugin_modules if not m.startswith("tapster.plugins.tapster_")]
    if not plugin_modules:  # tapster's own plugins are rescanned only while being edited
        for heavy in ("asyncio", "logging", "importlib.metadata"):
            assert heavy not in modules


def test_running_one_command_imports_only_its_plugin(sandbox):
    folder = sandbox.folder("proj")
    alpha = add_maker(sandbox, folder, "alpha", "The alpha service.")
    beta = add_maker(sandbox, folder, "beta", "The beta service.")
    assert tapster(sandbox, "--help").returncode == 0
    sub = tapster(sandbox, "alpha", "--help")
    assert sub.returncode == 0, sub.stderr
    assert "--port" in sub.stdout
    assert alpha.read_text() == "imported\n" * 2
    assert beta.read_text() == "imported\n"


def test_plugins_option_lists_and_fails_on_a_broken_plugin(sandbox):
    folder = sandbox.folder("proj")
    add_maker(sandbox, folder, "alpha", "The alpha service.")
    good = tapster(sandbox, "--plugins")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "tapster.service.ServiceMaker:" in good.stdout
    assert "The alpha service." in good.stdout
    assert str(folder / "alpha_plugin.py") in good.stdout

    sandbox.module(folder, "broken", "raise RuntimeError('cannot start')\n")
    bad = tapster(sandbox, "--plugins")
    assert bad.returncode == 1
    assert "tapster.plugins.broken" in bad.stdout
    assert "RuntimeError: cannot start" in bad.stdout
    # --help still works and names the broken module once, in one line.
    helped = tapster(sandbox, "--help")
    assert helped.returncode == 0
    assert "The alpha service." in helped.stdout
    assert [line for line in helped.stderr.splitlines() if "tapster.plugins.broken" in line] == [
        line for line in helped.stderr.splitlines() if line.strip()
    ]
    assert len(helped.stderr.strip().splitlines()) == 1


def test_rebuild_plugin_cache_writes_the_folder_cache(sandbox):
    folder = sandbox.folder("proj")
    alpha = add_maker(sandbox, folder, "alpha", "The alpha service.")
    result = tapster(sandbox, "--rebuild-plugin-cache")
    assert result.returncode == 0, result.stderr
    assert str(folder / ".tapster-plugin-cache.json") in result.stdout
    assert alpha.read_text() == "imported\n"
    assert tapster(sandbox, "--help").returncode == 0
    assert alpha.read_text() == "imported\n"


def _limited_memory() -> None:
    # Bounds what a cache read without a size cap could take from the machine.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def _zero_device(path: Path) -> None:
    """A private copy of /dev/zero (char 1,5) at ``path``, never the real one."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("mknod needs root")


@pytest.mark.parametrize("plant", ["fifo", "zero-device", "link-to-zero-device"])
def test_a_cache_that_is_not_a_regular_file_is_ignored_and_replaced(sandbox, plant):
    folder = sandbox.folder("proj")
    alpha = add_maker(sandbox, folder, "alpha", "The alpha service.")
    cache = folder / ".tapster-plugin-cache.json"
    device = sandbox.root / "zero"
    if plant == "fifo":
        os.mkfifo(cache)
    elif plant == "zero-device":
        _zero_device(cache)
    else:
        _zero_device(device)
        cache.symlink_to(device)
    began = time.monotonic()
    try:
        helped = subprocess.run(
            [sys.executable, "-m", "tapster", "--help"],
            env=sandbox.env(),
            cwd=sandbox.root,
            capture_output=True,
            text=True,
            timeout=20,
            preexec_fn=_limited_memory,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"tapster --help waited on a cache that is a {plant}")
    assert time.monotonic() - began < 10
    assert helped.returncode == 0, helped.stderr
    assert "The alpha service." in helped.stdout
    assert helped.stderr == ""
    # The folder is writable: the cache is now a regular file of its own ...
    assert stat.S_ISREG(cache.lstat().st_mode)
    assert tapster(sandbox, "--help").returncode == 0
    assert alpha.read_text() == "imported\n"  # ... that the next run reads.
    if plant == "link-to-zero-device":  # the link was replaced, not followed
        assert stat.S_ISCHR(device.lstat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as nobody")
def test_an_unwritable_fifo_cache_is_ignored_and_left_alone(sandbox):
    folder = sandbox.folder("system")
    alpha = add_maker(sandbox, folder, "alpha", "The alpha service.")
    alpha.touch()
    alpha.chmod(0o666)
    os.mkfifo(folder / ".tapster-plugin-cache.json")
    xdg = sandbox.root / "xdg-nobody"
    xdg.mkdir()
    shutil.chown(xdg, "nobody", "nogroup")
    python = python_for("nobody")
    if python is None:
        pytest.skip("no Python interpreter that nobody may run")
    env = sandbox.env(XDG_CACHE_HOME=str(xdg))
    env["PYTHONPATH"] += os.pathsep + str(SRC)
    for _ in range(2):  # the second run is served by nobody's own cache
        try:
            helped = subprocess.run(
                [python, "-m", "tapster", "--help"],
                env=env,
                cwd=sandbox.root,
                user="nobody",
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("tapster --help waited on a FIFO cache")
        assert helped.returncode == 0, helped.stderr
        assert "The alpha service." in helped.stdout
    assert stat.S_ISFIFO((folder / ".tapster-plugin-cache.json").lstat().st_mode)
    assert alpha.read_text() == "imported\n"


TWISTED_OPTIONS = """
from tapster.service import Service, ServiceMaker
from tapster.usage import Options


class PortOptions(Options):
    optParameters = [["port", "p", 8000, "Port.", int]]


class _Maker(ServiceMaker):
    tapname = "ported"
    description = "Ported from Twisted."
    options = PortOptions

    def make_service(self, options):
        return Service()


maker = _Maker()
"""

TWISTED_MAKER = """
from tapster.service import Service, ServiceMaker
from tapster.usage import Options


class _Maker(ServiceMaker):
    tapname = "camel"
    description = "makeService from Twisted."
    options = Options

    def makeService(self, options):
        return Service()


maker = _Maker()
"""


def test_twisted_spellings_are_named_at_once(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "ported", TWISTED_OPTIONS)
    sandbox.module(folder, "camel", TWISTED_MAKER)
    options_line = (
        f"plugin module tapster.plugins.ported ({folder / 'ported.py'}) is broken: TypeError: "
        "PortOptions.optParameters is Twisted's spelling, which tapster ignores: "
        "name it parameters (line 6)"
    )
    maker_line = (
        f"plugin module tapster.plugins.camel ({folder / 'camel.py'}) is broken: TypeError: "
        "_Maker.makeService is Twisted's spelling, which tapster ignores: "
        "name it make_service (line 6)"
    )
    listed = tapster(sandbox, "--plugins")
    assert listed.returncode == 1
    assert options_line in listed.stdout
    assert maker_line in listed.stdout
    # Every command says it in one line each, and the subcommand is not run
    # with no options (which failed later with "unknown option '-p'").
    ran = tapster(sandbox, "ported", "-p", "9")
    assert ran.returncode == 2
    lines = ran.stderr.splitlines()
    assert f"tapster: {options_line}" in lines
    assert f"tapster: {maker_line}" in lines
    assert "unknown option" not in ran.stderr
    assert "Traceback" not in ran.stderr
