"""The real ``tapster`` command over plugins: --help, --plugins, --rebuild-plugin-cache."""

from __future__ import annotations

import subprocess
import sys

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
