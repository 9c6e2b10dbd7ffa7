"""Entry points in the group ``tapster.plugins``, through a cache.

An entry point names either a plugin object (``myproject.tap:maker``) or a
module whose plugin objects all count (``myproject.tap``).

The cache records a fingerprint of the installed distributions: the names
(which carry the versions) and modification times of the ``*.dist-info`` and
``*.egg-info`` entries of every ``sys.path`` directory. While the fingerprint
matches, the entry points are not read again; when it changes, the
``entry_points.txt`` files are read directly (``importlib.metadata`` alone
would cost more to import than a whole warm start). Each entry also records
its module file's size and mtime, so that editing an editable install's
plugin refreshes that entry alone.

The cache lives in the user's cache directory, one file per set of
directories holding distributions.
"""

from __future__ import annotations

import os
import sys

from tapster.plugin import _cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeGuard

GROUP = "tapster.plugins"


def fingerprint(path: list[str] | None = None) -> list[object]:
    """What identifies the installed distributions on ``path`` (default ``sys.path``)."""
    result: list[object] = []
    entries: list[object] = list(sys.path if path is None else path)
    for entry in entries:
        if not isinstance(entry, str):
            continue
        directory = os.path.abspath(entry or os.curdir)
        try:
            it = os.scandir(directory)
        except OSError:
            continue
        names: list[str] = []
        with it:
            for item in it:
                name = item.name
                if name.endswith((".dist-info", ".egg-info")):
                    try:
                        names.append(f"{name}:{item.stat().st_mtime_ns}")
                    except OSError:
                        names.append(name)
        if names:
            names.sort()
            result.append([directory, names])
    return result


def cache_file(print_: list[object] | None = None) -> str | None:
    """The entry point cache for the directories that hold distributions.

    Keyed by those directories only (not by all of ``sys.path``), so that the
    current directory, which ``python -m`` and ``--app-dir`` put on the path,
    does not make a new cache wherever tapster is started.
    """
    current = fingerprint() if print_ is None else print_
    key = "\0".join(str(entry[0]) for entry in current if isinstance(entry, list))
    return _cache.user_cache_file("entry-points", key)


class EntryResult:
    """One entry point as the scan saw it (``record`` is its cache entry)."""

    __slots__ = ("from_cache", "record")

    def __init__(self, record: dict[str, object], from_cache: bool) -> None:
        self.record = record
        self.from_cache = from_cache

    @property
    def error(self) -> str | None:
        error = self.record.get("error")
        return error if isinstance(error, str) else None

    @property
    def plugins(self) -> list[list[object]]:
        plugins = self.record.get("plugins")
        return plugins if isinstance(plugins, list) else []

    @property
    def module(self) -> str:
        return str(self.record["module"])

    @property
    def origin(self) -> str:
        r = self.record
        return f"{r['dist']} {r['dist_version']} entry point {r['name']}"


_KEY_FIELDS = ("dist", "dist_version", "name", "value")


def _valid_entry(record: object) -> TypeGuard[dict[str, object]]:
    if type(record) is not dict:
        return False
    if not all(isinstance(record.get(k), str) for k in (*_KEY_FIELDS, "module")):
        return False
    if record.get("attribute") is not None and not isinstance(record["attribute"], str):
        return False
    return _cache.valid_outcome(record.get("error"), record.get("plugins"))


def _file_unchanged(record: dict[str, object]) -> bool:
    filename = record.get("file")
    if filename is None:
        return True
    if not isinstance(filename, str):
        return False
    try:
        st = os.stat(filename)
    except OSError:
        return False
    return record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns


def _matches(document: dict[str, object] | None, print_: list[object]) -> bool:
    return document is not None and document.get("fingerprint") == print_


def _cached_entries(document: dict[str, object] | None, print_: list[object]) -> list[object]:
    if document is None or document.get("fingerprint") != print_:
        return []
    entries = document.get("entries")
    return entries if isinstance(entries, list) else []


def scan_entry_points(
    *,
    force: bool = False,
    shared: object = None,
    store_shared: Callable[[dict[str, object]], bool] | None = None,
) -> list[EntryResult]:
    """Every entry point of the group, sorted by distribution then entry point name.

    The cache is the user's file; ``shared`` is a second copy kept in
    tapster's own folder cache (written by ``store_shared`` when the user's
    file cannot be, and always on ``force``), which serves users who have no
    cache directory from what a packager's ``rebuild_caches`` found.
    """
    current = fingerprint()
    path = cache_file(current)
    document = None if force or path is None else _cache.read(path)
    if (
        not force
        and not _matches(document, current)
        and isinstance(shared, dict)
        and (_matches(shared, current) or document is None)
    ):
        document = shared
    entries = _cached_entries(document, current)
    good = [e for e in entries if _valid_entry(e) and _file_unchanged(e)]
    if document is not None and entries is document.get("entries") and len(good) == len(entries):
        return [EntryResult(e, True) for e in good]

    old: dict[tuple[object, ...], dict[str, object]] = {}
    if document is not None and not force:
        stale = document.get("entries")
        for e in stale if isinstance(stale, list) else []:
            if _valid_entry(e) and _file_unchanged(e):
                old[tuple(e[k] for k in _KEY_FIELDS)] = e

    results: list[EntryResult] = []
    for dist, version, name, value, module, attribute in _read_entry_points(current):
        key = (dist, version, name, value)
        if key in old:
            results.append(EntryResult(old[key], True))
            continue
        from tapster.plugin._load import scan_module, scan_object  # the slow path only

        error, plugins = scan_object(module, attribute) if attribute else scan_module(module)
        record: dict[str, object] = {
            "dist": dist,
            "dist_version": version,
            "name": name,
            "value": value,
            "module": module,
            "attribute": attribute,
            "error": error,
            "plugins": plugins,
            **_file_stat(module),
        }
        results.append(EntryResult(record, False))

    document = {"fingerprint": current, "entries": [r.record for r in results]}
    written = (
        path is not None
        and _cache.ensure_user_cache_dir()
        and _cache.write(path, document, mode=0o600)
    )
    if store_shared is not None and (force or not written):
        store_shared(document)
    return results


def _file_stat(module: str) -> dict[str, object]:
    """The size and mtime of ``module``'s file, so that editing it refreshes the entry.

    A module that failed to import is located without running it, so that
    fixing it (in an editable install) is noticed too.
    """
    loaded = sys.modules.get(module)
    filename = getattr(loaded, "__file__", None) if loaded is not None else None
    if filename is None and loaded is None:
        filename = _find_file(module)
    if not isinstance(filename, str):
        return {"file": None}
    try:
        st = os.stat(filename)
    except OSError:
        return {"file": None}
    return {"file": filename, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _find_file(module: str) -> str | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (Exception, SystemExit):
        return None
    origin = spec.origin if spec is not None and spec.has_location else None
    return origin if isinstance(origin, str) else None


def _read_entry_points(print_: list[object]) -> list[tuple[str, str, str, str, str, str | None]]:
    """(dist, version, name, value, module, attribute) for each entry point, sorted.

    Reads the ``entry_points.txt`` of every distribution in the fingerprint
    directly: a few small files, where ``importlib.metadata`` would cost more
    to import than the whole warm start. As with ``importlib.metadata``, the
    first distribution of a name on ``sys.path`` hides later ones.
    """
    found = []
    seen: set[str] = set()
    for entry in print_:
        if not isinstance(entry, list) or len(entry) != 2:
            continue
        directory, items = entry
        for item in items:
            info = os.path.join(directory, str(item).rpartition(":")[0] or str(item))
            stem = os.path.basename(info).rpartition(".")[0]
            key = _normalize(stem.partition("-")[0])
            if key in seen:
                continue
            seen.add(key)
            entries = _group_entries(os.path.join(info, "entry_points.txt"))
            if not entries:
                continue
            dist, version = _name_and_version(info, stem)
            for name, value in entries:
                module, _, attribute = value.partition(":")
                found.append(
                    (dist, version, name, value, module.strip(), attribute.strip() or None)
                )
    found.sort(key=lambda e: (_normalize(e[0]), e[2]))
    return found


def _normalize(name: str) -> str:
    """A distribution name compared the way packaging does (case, ``-``, ``_``, ``.``)."""
    return name.lower().replace("_", "-").replace(".", "-")


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _group_entries(path: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of the ``[tapster.plugins]`` section of ``path``."""
    text = _read_text(path)
    if not text or GROUP not in text:
        return []
    entries = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            section = line[1:-1].strip()
        elif section == GROUP and "=" in line:
            name, _, value = line.partition("=")
            value = value.partition("[")[0].strip()  # drop "[extras]"
            if name.strip() and value:
                entries.append((name.strip(), value))
    return entries


def _name_and_version(info: str, stem: str) -> tuple[str, str]:
    """The ``Name`` and ``Version`` of a distribution, from its metadata headers."""
    name, _, version = stem.partition("-")
    for filename in ("METADATA", "PKG-INFO"):
        text = _read_text(os.path.join(info, filename))
        if text is None:
            continue
        for line in text.split("\n\n", 1)[0].splitlines():
            key, _, value = line.partition(":")
            if key == "Name":
                name = value.strip()
            elif key == "Version":
                version = value.strip()
        break
    return name, version or "unknown"
