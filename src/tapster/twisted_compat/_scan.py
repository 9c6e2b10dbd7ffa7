"""Listing Twisted plugins from tapster's own JSON cache; a child process scans on change.

One cache document covers the whole set of Twisted plugin folders (their
order decides which of two same-named modules wins), in the user's cache
directory as ``twisted-<hash>.json`` (the hash of ``sys.prefix`` and the
folders): never Twisted's pickled ``dropin.cache``, and never a file inside
Twisted's package. It records each folder's module names and stamps (size,
mtime in ns) as :func:`tapster.plugin._folders.module_files` gives them, the
plugins found and the problems met. A warm listing reads it and compares the
stamps: no Twisted and no plugin module is imported. Any difference sends the
whole set to :mod:`._probe` in a child process, and the answer is cached.
"""

from __future__ import annotations

import os
import sys

from tapster.plugin import _cache
from tapster.plugin._folders import module_files, twisted_folders
from tapster.plugin._registry import PluginProblem, warn_once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PREFIX = "twisted-"
"""Added to a Twisted plugin's tapname when tapster already has a command of that name."""

PROBE_TIMEOUT = 120.0
"""Seconds the child scan may take (it imports every Twisted plugin module once)."""


class TwistedPluginInfo:
    """One Twisted service maker as the cache describes it (nothing imported).

    ``name`` is the command (``tapname``, or ``twisted-`` + tapname when
    tapster already uses it); ``fields`` holds ``description``, as for
    tapster's own plugins, so the runner's listing treats both alike.
    """

    __slots__ = ("attribute", "fields", "from_cache", "kinds", "loop", "module", "name", "origin")

    def __init__(  # noqa: PLR0917 - plain record
        self,
        name: str,
        description: str,
        module: str,
        attribute: str,
        origin: str,
        from_cache: bool,
    ) -> None:
        self.name = name
        self.fields = {"tapname": name, "description": description}
        self.kinds = ("twisted.application.service.IServiceMaker",)
        self.module = module
        self.attribute = attribute
        self.origin = origin
        self.from_cache = from_cache
        self.loop: Callable[[], tuple[str, bool]] = lambda: ("auto", False)
        """Gives the runner's ``(--loop, --daemon)`` when the plugin is loaded."""

    def load(self) -> object:
        """Install the asyncio reactor, import the plugin, return a tapster service maker."""
        from tapster.twisted_compat._maker import load_maker

        return load_maker(self)

    def __repr__(self) -> str:
        return f"<TwistedPluginInfo {self.name!r} {self.module}:{self.attribute}>"


def _stamps(folders: list[str]) -> tuple[list[list[str]], list[list[int]]]:
    names: list[list[str]] = []
    stamps: list[list[int]] = []
    for folder in folders:
        n, s = module_files(folder)
        names.append(n)
        stamps.append(s)
    return names, stamps


def cache_file(folders: list[str]) -> str | None:
    """The user cache file for this environment and these folders."""
    return _cache.user_cache_file("twisted", "\0".join([sys.prefix, *folders]))


def scan(*, force: bool = False) -> tuple[list[list[Any]], list[list[str]], bool]:
    """``(plugins, problems, from_cache)`` for the Twisted plugin folders on ``sys.path``.

    ``plugins`` rows are ``[folder index, module, attribute, tapname,
    description]``, ``problems`` rows ``[category, module, path, message]``.
    Nothing at all when Twisted is not importable.
    """
    folders = twisted_folders()
    if not folders:
        return [], [], True
    names, stamps = _stamps(folders)
    path = cache_file(folders)
    if not force and path is not None:
        document = _cache.read(path)
        if (
            document is not None
            and document.get("folders") == folders
            and document.get("modules") == names
            and document.get("stamps") == stamps
            and _valid(document.get("plugins"), document.get("problems"))
        ):
            return document["plugins"], document["problems"], True  # type: ignore[return-value]
    answer = _probe(folders)
    plugins, problems = answer["plugins"], answer["problems"]
    # Stamps read again after the scan: a module edited meanwhile is scanned next time.
    if path is not None and _stamps(folders) == (names, stamps) and _cache.ensure_user_cache_dir():
        document = {
            "folders": folders,
            "modules": names,
            "stamps": stamps,
            "plugins": plugins,
            "problems": problems,
        }
        _cache.write(path, document, mode=0o600)
    return plugins, problems, False


def _valid(plugins: object, problems: object) -> bool:
    """Whether the cached rows have the shapes :func:`scan` returns."""
    if type(plugins) is not list or type(problems) is not list:
        return False
    for row in plugins:
        if (
            type(row) is not list
            or len(row) != 5
            or type(row[0]) is not int
            or not all(type(v) is str for v in row[1:])
        ):
            return False
    return all(
        type(row) is list and len(row) == 4 and all(type(v) is str for v in row) for row in problems
    )


def _probe(folders: list[str]) -> dict[str, Any]:
    """Run :mod:`._probe` in a child process; a failure of the child is one problem."""
    import json
    import subprocess

    request = json.dumps({"path": [p for p in sys.path if isinstance(p, str)], "folders": folders})
    code = "from tapster.twisted_compat._probe import main; main()"
    # -I: no PYTHON* variables, no user site, no current folder; the path comes in the request.
    # tapster itself must be importable in the child before it reads the request.
    import tapster

    src = os.path.dirname(os.path.dirname(os.path.abspath(tapster.__file__ or "")))
    bootstrap = f"import sys; sys.path.insert(0, {src!r}); {code}"
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", bootstrap],
            input=request,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        answer, detail = None, f"{type(exc).__name__}: {exc}"
    else:
        lines = done.stderr.strip().splitlines()
        detail = f"exit status {done.returncode}" + (f": {lines[-1]}" if lines else "")
    if not isinstance(answer, dict) or not _valid(answer.get("plugins"), answer.get("problems")):
        message = f"the scan of the Twisted plugin folders failed ({detail})"
        return {"plugins": [], "problems": [["broken", "twisted.plugins", folders[0], message]]}
    return answer


def describe(taken: set[str] | list[str]) -> tuple[list[TwistedPluginInfo], list[PluginProblem]]:
    """The Twisted service makers as commands, and the problems, given tapster's ``taken`` names.

    A tapname tapster already uses becomes ``twisted-TAPNAME``; a second
    Twisted plugin of one name is a ``duplicate`` problem and is left out.
    """
    plugins, rows, from_cache = scan()
    folders = twisted_folders()
    problems = [
        PluginProblem(module, origin, message, category)
        for category, module, origin, message in rows
    ]
    used = set(taken)
    infos: list[TwistedPluginInfo] = []
    for index, module, attribute, tapname, description in plugins:
        origin = os.path.join(folders[index], module.rpartition(".")[2] + ".py")
        name = PREFIX + tapname if tapname in taken else tapname
        if name in used:
            message = (
                f"Twisted plugin {module}:{attribute} ({origin}) has the command name {name!r}"
                " of an earlier plugin, which wins"
            )
            problems.append(PluginProblem(module, origin, message, "duplicate"))
            continue
        used.add(name)
        infos.append(TwistedPluginInfo(name, description, module, attribute, origin, from_cache))
    warn_once(problems)  # as tapster's own broken plugins are
    return infos, problems
