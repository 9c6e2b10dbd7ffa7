"""The cold scan of Twisted plugin folders, run in a child process.

Importing Twisted's plugin modules imports Twisted, and a plugin module may
install a reactor or print while it is imported: none of that belongs in the
process that lists or runs plugins. The parent (:mod:`._scan`) runs
``python -I -c "...main()"`` with the request on stdin (``sys.path`` and the
folders) and reads one JSON document from stdout; whatever the modules print
goes to stderr. Found: every module-level object that provides both
``IPlugin`` and ``IServiceMaker`` (what ``twistd`` lists), as
``[folder index, module, attribute, tapname, description]``; problems as
``[category, module, path, message]``.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PACKAGE = "twisted.plugins"


def probe(folders: list[str]) -> dict[str, Any]:
    """Import every plugin module of ``folders`` (the first of a name only) and describe it."""
    from tapster.plugin._folders import module_files
    from tapster.plugin._load import error_line

    plugins: list[list[object]] = []
    problems: list[list[str]] = []
    try:
        import importlib

        from twisted.application.service import IServiceMaker
        from twisted.plugin import IPlugin
    except (Exception, SystemExit) as exc:
        problems.append(["broken", "twisted", "", f"Twisted cannot be imported: {error_line(exc)}"])
        return {"plugins": plugins, "problems": problems}
    seen: dict[str, str] = {}
    for index, folder in enumerate(folders):
        names, _ = module_files(folder)
        for name in names:
            path = os.path.join(folder, name + ".py")
            module_name = f"{PACKAGE}.{name}"
            if name in seen:
                message = (
                    f"Twisted plugin module {module_name} at {path} is shadowed by {seen[name]}"
                )
                problems.append(["shadowed", module_name, path, message])
                continue
            seen[name] = path
            try:
                module = importlib.import_module(module_name)
            except (Exception, SystemExit) as exc:
                message = (
                    f"Twisted plugin module {module_name} ({path}) is broken: "
                    f"{error_line(exc, path)}"
                )
                problems.append(["broken", module_name, path, message])
                continue
            found: set[int] = set()
            for attribute, obj in list(vars(module).items()):
                if attribute.startswith("__") or isinstance(obj, type | ModuleType):
                    continue
                try:
                    provides = IPlugin.providedBy(obj) and IServiceMaker.providedBy(obj)
                    tapname = getattr(obj, "tapname", None)
                    description = getattr(obj, "description", "")
                except Exception:  # noqa: S112 - an odd object is simply no plugin
                    continue
                if not provides or id(obj) in found:
                    continue
                found.add(id(obj))
                if not isinstance(tapname, str) or not tapname:
                    message = (
                        f"Twisted plugin {module_name}:{attribute} ({path}) is broken: "
                        "its tapname is not a non-empty string"
                    )
                    problems.append(["broken", module_name, path, message])
                    continue
                text = description if isinstance(description, str) else ""
                plugins.append([index, module_name, attribute, tapname, text])
    return {"plugins": plugins, "problems": problems}


def main() -> None:
    """Read the request from stdin, scan, write the answer to the original stdout."""
    import json

    request = json.loads(sys.stdin.read())
    sys.path[:] = request["path"]
    out = os.dup(1)
    os.dup2(2, 1)  # what plugin modules print goes to stderr, not into the answer
    answer = probe(request["folders"])
    data = json.dumps(answer).encode("utf-8")
    view = memoryview(data)
    while view:
        view = view[os.write(out, view) :]
    os.close(out)
    sys.stdout.flush()
    os._exit(0)  # whatever the plugins started (threads, reactors) is not waited for
