"""Importing plugin modules and describing what they define.

This is the slow path: it runs only for modules that are new or changed since
the cache was written. Whatever a plugin module raises while it is imported
(any exception, ``SystemExit`` included) is caught and turned into a one-line
error, so that one broken plugin never hides the others.
"""

from __future__ import annotations

# Imported here, once, rather than in the functions that run once per module of a
# cold scan (an import inside them costs a thousand lookups for a thousand modules).
# Only the slow path imports this module, and it needs all of them.
import _imp
import io
import marshal
import sys
from importlib.machinery import ModuleSpec, SourceFileLoader
from importlib.util import MAGIC_NUMBER
from types import CodeType

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
    name: str, expected_file: str | None = None, stamp: tuple[int, int] | None = None
) -> tuple[str | None, list[list[object]]]:
    """Import module ``name``; return ``(None, plugins)`` or ``(error, [])``.

    When ``expected_file`` is given, a module that turns out to come from
    elsewhere (a package or extension of the same name earlier on the path)
    is an error too.
    """
    try:
        if expected_file is None:
            module = import_module(name)
        else:
            module = _import_file(name, expected_file, stamp)
    except (Exception, SystemExit) as exc:
        return error_line(exc, expected_file), []
    if expected_file is not None:
        actual = getattr(module, "__file__", None)
        if not actual or (actual != expected_file and not _same_file(actual, expected_file)):
            return f"ImportError: {name} was loaded from {actual}", []
    return None, describe_module(module)


def _import_file(name: str, path: str, stamp: tuple[int, int] | None = None) -> ModuleType:
    """Import submodule ``name`` of an imported package from the file ``path``.

    The scan already knows which file it means, so this skips the search
    along the package's ``__path__``; the module is registered in
    ``sys.modules`` and on its package exactly as ``import`` would do.
    ``stamp`` is the file's ``(size, mtime_ns)`` when the caller has just
    stat'ed it: a current ``.pyc`` is then used without asking the import
    system to stat and locate it again (see :func:`_cached_code`).
    """
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    # What importlib.util.spec_from_file_location and module_from_spec make for
    # a plain source file, built directly (they cost more than the module here).
    loader = SourceFileLoader(name, path)
    spec = ModuleSpec(name, loader, origin=path)
    spec.has_location = True
    cached = _cache_path(path)
    spec.cached = cached
    module = type(sys)(name)
    module.__loader__ = loader
    module.__package__ = name.rpartition(".")[0]
    module.__spec__ = spec
    module.__file__ = path
    module.__cached__ = cached  # type: ignore[attr-defined]
    code = _cached_code(cached, stamp, path) if stamp is not None else None
    sys.modules[name] = module
    try:
        if code is None:
            loader.exec_module(module)
        else:
            # The module's own compiled code, which ``import`` would run just the same.
            exec(code, module.__dict__)  # noqa: S102
    except BaseException:
        sys.modules.pop(name, None)
        raise
    module = sys.modules[name]
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


def _cache_path(path: str) -> str | None:
    """Where the import system keeps the ``.pyc`` of the source file ``path``."""
    tag: str | None = sys.implementation.cache_tag
    if tag is None:  # an implementation without .pyc files
        return None
    if sys.pycache_prefix is None and not sys.flags.optimize and path.endswith(".py"):
        head, _, tail = path.rpartition("/")
        if head and "\\" not in path:
            return f"{head}/__pycache__/{tail[:-3]}.{tag}.pyc"
    from importlib.util import cache_from_source

    try:
        return cache_from_source(path)
    except (NotImplementedError, ValueError):
        return None


def _cached_code(cached: str | None, stamp: tuple[int, int], source: str) -> CodeType | None:
    """The code object in ``cached`` if it is a current timestamp ``.pyc``, else ``None``.

    The same checks as the import system's own loader for an unchecked
    timestamp pyc (magic number, flags 0, source mtime and size), against
    the source's stat that the scan already made. Anything else (no pyc, a
    hash-based one, a stale one, a rounding doubt about the mtime) returns
    ``None``, and the ordinary loader handles the module, writing a fresh
    ``.pyc`` when it may. As the loader does, the code's file name is set to
    ``source`` (a folder may have moved since the ``.pyc`` was written).
    """
    if cached is None:
        return None
    try:
        with io.open_code(cached) as f:
            data = f.read()
    except OSError:
        return None
    size, mtime_ns = stamp
    if (
        len(data) < 16
        or data[:4] != MAGIC_NUMBER
        or data[4:8] != b"\0\0\0\0"
        or int.from_bytes(data[8:12], "little") != (mtime_ns // 1_000_000_000) & 0xFFFFFFFF
        or int.from_bytes(data[12:16], "little") != size & 0xFFFFFFFF
    ):
        return None
    try:
        # The import system's own .pyc of the module (not the plugin cache, which
        # is JSON): it is code ``import`` would load and run from here anyway.
        code: object = marshal.loads(memoryview(data)[16:])  # noqa: S302
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(code, CodeType):
        return None
    _imp._fix_co_filename(code, source)  # type: ignore[attr-defined]
    return code


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
