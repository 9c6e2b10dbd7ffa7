"""Drop-in folders: scanning ``tapster/plugins/`` folders through their caches.

Each folder has its own cache, recording per module its size, its
modification time in nanoseconds and what importing it found (its plugins, or
the one-line error it raised): ``{name: [size, mtime_ns, error, plugins,
environment]}``.
A module whose size and mtime match its record is not imported; any other
module is imported and its record replaced, so a change invalidates exactly
the modules it touches.

The cache is written inside the folder when the folder is writable, else in
the user's cache directory under a name derived from the folder's path.
"""

from __future__ import annotations

import os
import sys
import time

from tapster.plugin import _cache
from tapster.plugin._folders import PACKAGE, module_files
from tapster.plugin._load import scan_module

_RACY_NS = 2_000_000_000

SHARED_ENTRY_POINTS = "entry_points"
"""Key of the entry point cache kept in tapster's own folder cache (see ``store_shared``)."""


class ModuleResult:
    """One drop-in module as the scan saw it.

    ``record`` is ``[size, mtime_ns, error, plugins, environment]``;
    ``environment`` is ``sys.prefix`` for an error (see ``_fresh``), else
    ``None``. ``shadowed_by`` is the
    file that wins over this one, if any (its record is then empty).
    """

    __slots__ = ("from_cache", "name", "path", "record", "shadowed_by")

    def __init__(
        self,
        name: str,
        path: str,
        record: list[object],
        from_cache: bool,
        shadowed_by: str | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.record = record
        self.from_cache = from_cache
        self.shadowed_by = shadowed_by

    @property
    def module(self) -> str:
        return f"{PACKAGE}.{self.name}"

    @property
    def error(self) -> str | None:
        error = self.record[2] if self.record else None
        return error if isinstance(error, str) else None

    @property
    def plugins(self) -> list[list[object]]:
        plugins = self.record[3] if self.record else []
        return plugins if isinstance(plugins, list) else []


class FolderScan:
    """The modules of one folder, in name order, and where its cache lives."""

    __slots__ = ("cache_file", "document", "folder", "modules")

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.modules: list[ModuleResult] = []
        self.cache_file: str | None = None
        self.document: dict[str, object] | None = None
        """The cache document found beside the folder (``None`` if none was valid)."""


def beside_cache_file(folder: str) -> str:
    """The cache file kept inside a writable drop-in folder."""
    return os.path.join(folder, _cache.CACHE_NAME)


def user_cache_file(folder: str) -> str | None:
    """The cache file for ``folder`` in the user's cache directory."""
    return _cache.user_cache_file("folder", folder)


def _modules_of(document: dict[str, object] | None, folder: str | None) -> dict[str, object]:
    if document is None:
        return {}
    if folder is not None and document.get("folder") != folder:
        return {}
    modules = document.get("modules")
    return modules if type(modules) is dict else {}


def _fresh(record: object, size: int, mtime_ns: int) -> bool:
    """Whether a cached module record still describes the file, here.

    An import error often depends on the environment (a missing dependency),
    while one folder can serve several (a system folder seen from a venv), so
    an error only counts in the environment (``sys.prefix``) that met it;
    elsewhere the module is tried again.
    """
    return (
        type(record) is list
        and len(record) == 5
        and record[0] == size
        and record[1] == mtime_ns
        and _cache.valid_outcome(record[2], record[3])
        and record[4] == (None if record[2] is None else sys.prefix)
    )


def _racy(mtime_ns: int, now_ns: int) -> bool:
    """Whether a whole-second mtime is so recent that an edit could hide behind it."""
    return mtime_ns % 1_000_000_000 == 0 and now_ns - mtime_ns < _RACY_NS


def scan_folder(folder: str, taken: dict[str, str], *, force: bool = False) -> FolderScan:
    """Scan ``folder`` through its cache, importing only new or changed modules.

    ``taken`` maps module names already provided by earlier folders to their
    files; such names here are shadowed, reported but never imported. Names
    this folder provides are added to ``taken``. With ``force``, every
    module is imported and the cache rewritten (what packagers run).
    """
    scan = FolderScan(folder)
    results = scan.modules
    files = module_files(folder)
    beside_path = beside_cache_file(folder)
    scan.document = None if force else _cache.read(beside_path)
    beside = _modules_of(scan.document, None)
    user_path: str | None = None  # computed only when the beside cache falls short
    user: dict[str, object] | None = {} if force else None

    final: dict[str, object] = {}
    all_beside = not force
    now_ns = 0
    for name in sorted(files):
        path, size, mtime = files[name]
        record = beside.get(name)
        if not _fresh(record, size, mtime):
            all_beside = False
            if user is None:
                user_path = user_cache_file(folder)
                user = _modules_of(_cache.read(user_path), folder) if user_path else {}
            record = user.get(name)
            if not _fresh(record, size, mtime):
                record = None
        winner = taken.get(name)
        if winner is not None:
            if record is not None:
                final[name] = record
            results.append(ModuleResult(name, path, [], True, winner))
            continue
        taken[name] = path
        if type(record) is list:
            final[name] = record
            results.append(ModuleResult(name, path, record, True))
            continue
        error, plugins = scan_module(f"{PACKAGE}.{name}", path)
        fresh: list[object] = [size, mtime, error, plugins, None if error is None else sys.prefix]
        results.append(ModuleResult(name, path, fresh, False))
        now_ns = now_ns or time.time_ns()
        if not _racy(mtime, now_ns):
            final[name] = fresh

    if all_beside and len(final) == len(beside):
        scan.cache_file = beside_path
        return scan
    if user is None:  # e.g. a module was removed: the user's copy may already say so
        user_path = user_cache_file(folder)
        user = _modules_of(_cache.read(user_path), folder) if user_path else {}
    if not force and user_path is not None and final == user:
        scan.cache_file = user_path
        return scan
    if user_path is None:
        user_path = user_cache_file(folder)
    document: dict[str, object] = {"folder": folder, "modules": final}
    if scan.document is not None and SHARED_ENTRY_POINTS in scan.document:
        document[SHARED_ENTRY_POINTS] = scan.document[SHARED_ENTRY_POINTS]
    if _cache.write(beside_path, document):
        scan.cache_file = beside_path
    elif (
        user_path is not None
        and _cache.ensure_user_cache_dir()
        and _cache.write(user_path, document, mode=0o600)
    ):
        scan.cache_file = user_path
    return scan


def store_shared(folder: str, key: str, value: object) -> bool:
    """Keep ``value`` under ``key`` in ``folder``'s own cache file; return whether it worked.

    Used for the entry point cache, so that what a packager's
    ``rebuild_caches`` found serves users who have no cache directory.
    Only the folder's own cache file is tried (never the user's).
    """
    path = beside_cache_file(folder)
    document = _cache.read(path)
    if document is None:
        document = {"folder": folder, "modules": {}}
    document[key] = value
    return _cache.write(path, document)
