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


def describe_module(module: ModuleType) -> list[list[object]]:
    """The plugins a module defines, in the order of its namespace.

    Each is ``[attribute, {kind id: name}, {field: value}]``, the cache's own
    shape. An object bound to several names is described once, under its
    first name; ``__dunder__`` names (the module's own attributes) are skipped.
    """
    kinds = kind_classes()
    seen: set[int] = set()
    plugins: list[list[object]] = []
    for attribute, obj in list(vars(module).items()):
        if attribute[:2] == "__" == attribute[-2:]:
            continue
        if id(obj) in seen or isinstance(obj, type) or type(obj).__name__ == "module":
            continue
        seen.add(id(obj))
        described = describe_object(obj, kinds)
        if described is not None:
            plugins.append([attribute, described[0], described[1]])
    return plugins


def scan_module(
    name: str, expected_file: str | None = None
) -> tuple[str | None, list[list[object]]]:
    """Import module ``name``; return ``(None, plugins)`` or ``(error, [])``.

    When ``expected_file`` is given, a module that turns out to come from
    elsewhere (a package or extension of the same name earlier on the path)
    is an error too.
    """
    try:
        module = import_module(name) if expected_file is None else _import_file(name, expected_file)
    except (Exception, SystemExit) as exc:
        return error_line(exc, expected_file), []
    if expected_file is not None:
        actual = getattr(module, "__file__", None)
        if not actual or not _same_file(actual, expected_file):
            return f"ImportError: {name} was loaded from {actual}", []
    return None, describe_module(module)


def _import_file(name: str, path: str) -> ModuleType:
    """Import submodule ``name`` of an imported package from the file ``path``.

    The scan already knows which file it means, so this skips the search
    along the package's ``__path__``; the module is registered in
    ``sys.modules`` and on its package exactly as ``import`` would do.
    """
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    module = sys.modules[name]
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


def scan_object(module_name: str, attribute: str) -> tuple[str | None, list[list[object]]]:
    """Import ``module_name`` and describe the single plugin at ``attribute``."""
    try:
        module = import_module(module_name)
        obj = resolve(module, attribute)
    except (Exception, SystemExit) as exc:
        return error_line(exc, _module_file(module_name)), []
    described = describe_object(obj, kind_classes())
    if described is None:
        return f"TypeError: {module_name}:{attribute} is not a plugin of any known kind", []
    return None, [[attribute, described[0], described[1]]]


def _module_file(name: str) -> str | None:
    module = sys.modules.get(name)
    return getattr(module, "__file__", None) if module is not None else None


def _same_file(a: str, b: str) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
