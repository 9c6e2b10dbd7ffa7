"""Importing plugin modules and describing what they define.

This is the slow path: it runs only for modules that are new or changed since
the cache was written. Whatever a plugin module raises while it is imported
(any exception, ``SystemExit`` included) is caught and turned into a one-line
error, so that one broken plugin never hides the others.
"""

from __future__ import annotations

import sys

from tapster.plugin._kind import describe_object, kind_classes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType, TracebackType


def error_line(exc: BaseException, filename: str | None = None) -> str:
    """``exc`` as one line: its type, the first line of its message, and where it happened."""
    message = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    line = _last_line_in(exc.__traceback__, filename) if filename else None
    if line is not None:
        text += f" (line {line})"
    return text


def _last_line_in(tb: TracebackType | None, filename: str) -> int | None:
    found = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def import_module(name: str) -> ModuleType:
    """Import ``name`` the ordinary way (so it lands in ``sys.modules`` once)."""
    import importlib

    return importlib.import_module(name)


def resolve(obj: object, attribute: str) -> object:
    """Follow a dotted ``attribute`` path from ``obj``."""
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def describe_module(module: ModuleType) -> list[dict[str, object]]:
    """The plugins a module defines, in the order of its namespace.

    An object bound to several names is described once, under its first name.
    """
    kinds = kind_classes()
    seen: set[int] = set()
    plugins: list[dict[str, object]] = []
    for attribute, obj in list(vars(module).items()):
        if id(obj) in seen or isinstance(obj, type) or type(obj).__name__ == "module":
            continue
        seen.add(id(obj))
        described = describe_object(obj, kinds)
        if described is not None:
            plugins.append({"attribute": attribute, **described})
    return plugins


def scan_module(name: str, expected_file: str | None = None) -> dict[str, object]:
    """Import module ``name`` and describe its plugins, or record why it failed.

    Returns ``{"plugins": [...], "error": None}`` or ``{"plugins": [], "error": "..."}``.
    When ``expected_file`` is given, a module that turns out to come from
    elsewhere (a package or extension of the same name earlier on the path)
    is an error too.
    """
    try:
        module = import_module(name)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        return {"plugins": [], "error": error_line(exc, expected_file)}
    if expected_file is not None:
        actual = getattr(module, "__file__", None)
        if not actual or not _same_file(actual, expected_file):
            return {"plugins": [], "error": f"ImportError: {name} was loaded from {actual}"}
    return {"plugins": describe_module(module), "error": None}


def scan_object(module_name: str, attribute: str) -> dict[str, object]:
    """Import ``module_name`` and describe the single plugin at ``attribute``."""
    try:
        module = import_module(module_name)
        obj = resolve(module, attribute)
    except (Exception, SystemExit) as exc:
        filename = _module_file(module_name)
        return {"plugins": [], "error": error_line(exc, filename)}
    described = describe_object(obj, kind_classes())
    if described is None:
        return {
            "plugins": [],
            "error": f"TypeError: {module_name}:{attribute} is not a plugin of any known kind",
        }
    return {"plugins": [{"attribute": attribute, **described}], "error": None}


def _module_file(name: str) -> str | None:
    module = sys.modules.get(name)
    return getattr(module, "__file__", None) if module is not None else None


def _same_file(a: str, b: str) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
