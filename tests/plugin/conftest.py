"""Fixtures for the plugin discovery tests: sandboxes of sys.path folders and a driver.

Every test runs discovery in a fresh Python subprocess (a new interpreter is
the only honest way to prove what a warm start imports), with ``PYTHONPATH``
pointing at folders made for the test and ``XDG_CACHE_HOME`` at a private
user cache directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

KIND_MODULE = '''
"""A plugin kind for the tests (the real kinds belong to other areas)."""
from tapster.plugin import PluginKind


class Widget(PluginKind):
    plugin_kind = "tests.plugin.Widget"
    plugin_name_field = "wname"
    plugin_fields = ("wname", "description")


class Gadget(PluginKind):
    plugin_kind = "tests.plugin.Gadget"
    plugin_name_field = "gname"
    plugin_fields = ("gname",)


class W(Widget):
    def __init__(self, wname, description=""):
        self.wname = wname
        self.description = description


class Foreign:
    """Cannot inherit from Widget; registered instead."""

    def __init__(self, wname):
        self.wname = wname
        self.description = "registered, not inherited"


Widget.register(Foreign)


class Both(W, Gadget):
    def __init__(self, name):
        super().__init__(name, "both kinds")
        self.gname = "g-" + name
'''

DRIVER = r"""
import sys

def main():
    action = sys.argv[1]
    out = {}
    from tapster import plugin
    if action == "describe":
        for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
            infos = plugin.describe_plugins(sys.argv[2])
        out["plugins"] = [
            {"name": i.name, "fields": dict(i.fields), "kinds": list(i.kinds),
             "module": i.module, "attribute": i.attribute, "origin": i.origin,
             "from_cache": i.from_cache}
            for i in infos
        ]
    elif action == "fields":  # the runner's --help listing: names and one field
        from tapster.plugin._registry import describe_field
        for _ in range(2):  # the first run may scan, the second reads the cache
            names, values = describe_field(sys.argv[2], sys.argv[3])
            out.setdefault("fields", []).append([list(pair) for pair in zip(names, values)])
        infos = plugin.describe_plugins(sys.argv[2])
        out["expected"] = [[i.name, i.fields.get(sys.argv[3], "")] for i in infos]
    elif action == "get":
        import testkind
        objs = plugin.get_plugins(getattr(testkind, sys.argv[2]))
        objs += plugin.get_plugins(getattr(testkind, sys.argv[2]))
        out["objects"] = [getattr(o, "wname", None) for o in objs]
    elif action == "problems":
        out["problems"] = [[p.module, p.broken, p.message] for p in plugin.plugin_problems()]
    elif action == "report":
        report = plugin.plugin_report()
        out["text"] = report.format()
        out["status"] = report.exit_status
    elif action == "rebuild":
        out["written"] = plugin.rebuild_caches()
    # tapster's own plugins (tapster_*) are reported apart: other work on them while the
    # tests run may make a run rescan them, which says nothing about the test's own modules.
    out["imported"] = sorted(
        m for m in sys.modules
        if (m.startswith("tapster.plugins.") and not m.startswith("tapster.plugins.tapster_"))
        or m.split(".")[0] in ("demo_pkg", "plugmods")
    )
    out["builtins_rescanned"] = any(m.startswith("tapster.plugins.tapster_") for m in sys.modules)
    out["heavy"] = sorted(
        m for m in ("asyncio", "logging", "importlib.metadata", "json", "re", "typing")
        if m in sys.modules
    )
    import json
    print("RESULT " + json.dumps(out))

main()
"""


SRC = Path(__file__).resolve().parents[2] / "src"
_interpreters: dict[str, str | None] = {}


def python_for(user: str) -> str | None:
    """A Python 3.11+ that ``user`` can run: ours, or else the system's.

    Our interpreter may live under a home directory that other users cannot
    enter; discovery needs nothing but the standard library and ``src``.
    """
    if user not in _interpreters:
        _interpreters[user] = None
        for candidate in (sys.executable, "/usr/bin/python3"):
            try:
                proc = subprocess.run(
                    [candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                    user=user,
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
            except OSError:
                continue
            if proc.returncode == 0:
                _interpreters[user] = candidate
                break
    return _interpreters[user]


class Sandbox:
    """Folders on a private ``sys.path`` and a way to run discovery over them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kinds = root / "kinds"
        self.kinds.mkdir()
        (self.kinds / "testkind.py").write_text(KIND_MODULE)
        self.driver = root / "driver.py"
        self.driver.write_text(DRIVER)
        self.xdg = root / "xdg"
        self.path: list[Path] = [self.kinds]
        #: A private copy of the ``tapster`` package to run on (``own_tapster``), else None.
        self.tapster_src: Path | None = None

    def own_tapster(self) -> None:
        """Run this sandbox's commands on a private copy of the ``tapster`` package.

        tapster keeps a copy of the entry point cache in its own plugin folder's cache, for
        users without a cache directory. Tests on other workers rebuild the real tree's at
        any moment, so a test that reads that copy needs a tree of its own.
        """
        target = self.root / "tapster-src"
        shutil.copytree(
            SRC / "tapster",
            target / "tapster",
            ignore=shutil.ignore_patterns("__pycache__", ".tapster-plugin-cache.json"),
        )
        self.tapster_src = target

    def folder(self, name: str) -> Path:
        """A new ``sys.path`` entry ``name`` holding an empty drop-in folder."""
        entry = self.root / name
        plugins = entry / "tapster" / "plugins"
        plugins.mkdir(parents=True)
        self.path.append(entry)
        return plugins

    def module(self, folder: Path, name: str, body: str) -> Path:
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(body))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        own = [self.tapster_src] if self.tapster_src is not None else []
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [*own, *self.path])
        env["XDG_CACHE_HOME"] = str(self.xdg)
        env.update(extra)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, str(self.driver), *args]

    def run(
        self, *args: str, user: str | None = None, python_of: str | None = None, **env: str
    ) -> dict[str, Any]:
        """Run the driver (as ``user`` if given); return its result, with ``stderr`` added.

        With ``python_of``, run it with the interpreter that user would get
        (so that two users see the same ``sys.path``).
        """
        command = self.command(*args)
        environ = self.env(**env)
        interpreter_user = user or python_of
        if interpreter_user is not None:
            python = python_for(interpreter_user)
            if python is None:
                pytest.skip(f"no Python interpreter that {interpreter_user} may run")
            command[0] = python
            environ["PYTHONPATH"] += os.pathsep + str(SRC)
        proc = subprocess.run(
            command,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.root,
            user=user,
            group="nogroup" if user == "nobody" else None,
            extra_groups=[] if user is not None else None,
        )
        return self.parse(proc)

    def describe(self, kind: str = "tests.plugin.Widget", **env: str) -> dict[str, Any]:
        return self.run("describe", kind, **env)

    @staticmethod
    def names(result: dict[str, Any]) -> list[str]:
        """The plugin names of a ``describe`` result, in order."""
        return [p["name"] for p in result["plugins"]]

    @staticmethod
    def parse(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        """The driver's result line, with ``stderr`` added."""
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        assert proc.returncode == 0 and lines, f"driver failed ({proc.returncode}):\n{proc.stderr}"
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
        result["stderr"] = proc.stderr
        return result


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox in a world-readable temporary directory (so ``nobody`` can use it)."""
    root = Path(tempfile.mkdtemp(prefix="tapster-plugin-test-"))
    root.chmod(0o755)
    try:
        yield Sandbox(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
