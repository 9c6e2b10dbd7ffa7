"""Entry points in the group ``tapster.plugins``, through a cache.

An entry point names either a plugin object (``myproject.tap:maker``) or a
module whose plugin objects all count (``myproject.tap``).

Reading entry points needs ``importlib.metadata``, which is slow to import
and reads every installed distribution, so the cache records a fingerprint of
the installed distributions: the names (which carry the versions) and
modification times of the ``*.dist-info`` and ``*.egg-info`` entries of every
``sys.path`` directory. While the fingerprint matches, the entry points are
not read again. Each entry also records its module file's size and mtime, so
that editing an editable install's plugin refreshes that entry alone.

The cache lives in the user's cache directory, one file per set of
directories holding distributions.
"""

from __future__ import annotations

import os
import sys

from tapster.plugin import _cache
from tapster.plugin._load import scan_module, scan_object

TYPE_CHECKING = False
if TYPE_CHECKING:
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


def _cached_entries(document: dict[str, object] | None, print_: list[object]) -> list[object]:
    if document is None or document.get("fingerprint") != print_:
        return []
    entries = document.get("entries")
    return entries if isinstance(entries, list) else []


def scan_entry_points(*, force: bool = False) -> list[EntryResult]:
    """Every entry point of the group, sorted by distribution then entry point name."""
    current = fingerprint()
    path = cache_file(current)
    document = None if force or path is None else _cache.read(path)
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
    for dist, version, name, value, module, attribute in _read_entry_points():
        key = (dist, version, name, value)
        if key in old:
            results.append(EntryResult(old[key], True))
            continue
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

    if path is not None and _cache.ensure_user_cache_dir():
        document = {
            "fingerprint": current,
            "entries": [r.record for r in results],
        }
        _cache.write(path, document, mode=0o600)
    return results


def _file_stat(module: str) -> dict[str, object]:
    loaded = sys.modules.get(module)
    filename = getattr(loaded, "__file__", None) if loaded is not None else None
    if not isinstance(filename, str):
        return {"file": None}
    try:
        st = os.stat(filename)
    except OSError:
        return {"file": None}
    return {"file": filename, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_entry_points() -> list[tuple[str, str, str, str, str, str | None]]:
    """(dist, version, name, value, module, attribute) for each entry point, sorted."""
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=GROUP):
        dist = ep.dist
        dist_name = dist.name if dist is not None else "unknown"
        dist_version = dist.version if dist is not None else "unknown"
        found.append((dist_name, dist_version, ep.name, ep.value, ep.module, ep.attr or None))
    found.sort(key=lambda e: (e[0].lower().replace("_", "-"), e[2]))
    return found
