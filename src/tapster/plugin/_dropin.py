"""Drop-in folders: scanning ``tapster/plugins/`` folders through their caches.

Each folder has its own cache, recording per module its size, its modification
time in nanoseconds and what importing it found (its plugins, or the one-line
error it raised). A document is a few flat lists, the cheapest shape to parse
and to check (see :func:`_document`): ``"modules"`` (the names, sorted),
``"stamps"`` (``[size, mtime_ns, ...]`` in that order), ``"errors"``
(``[module index, error, environment]`` per broken module) and ``"plugins"``:
the plugins in runs of one shape (the shapes of :mod:`tapster.plugin._cache`,
listed once under ``"schemas"``), a run being columns, ``[schema index,
[module index, ...], [attribute, ...], [name, ...] per kind, [value, ...] per
field]``. When the folder's names and stamps equal the cache's (two list
comparisons) and no module is broken, the whole folder is current and only the
runs are checked, a column at a time; otherwise each module is checked on its
own: one whose size and mtime match its record is not imported, any other is
imported and its record replaced, so a change invalidates exactly the modules
it touches.

The cache is written inside the folder when the folder is writable, else in
the user's cache directory under a name derived from the folder's path.
"""

from __future__ import annotations

import os
import sys
import time

from tapster.plugin import _cache
from tapster.plugin._folders import PACKAGE, module_files, module_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_RACY_NS = 2_000_000_000

SHARED_ENTRY_POINTS = "entry_points"
"""Key of the entry point cache kept in tapster's own folder cache (see ``store_shared``)."""


class ModuleResult:
    """One drop-in module as the scan saw it.

    ``record`` is ``[size, mtime_ns, error, plugins, environment]``;
    ``environment`` is ``sys.prefix`` for an error (see ``_Cached.fresh``),
    else ``None``. A record read from a cache keeps its plugins in the
    compact layout (``schemas`` is then the document's shape table) until
    someone asks for them. ``shadowed_by`` is the file that wins over this
    one, if any (its record is then empty).
    """

    __slots__ = ("from_cache", "name", "path", "record", "schemas", "shadowed_by")

    def __init__(
        self,
        name: str,
        path: str,
        record: list[object],
        from_cache: bool,
        *,
        shadowed_by: str | None = None,
        schemas: list[_cache.Schema] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.record = record
        self.from_cache = from_cache
        self.shadowed_by = shadowed_by
        self.schemas = schemas

    @property
    def module(self) -> str:
        return f"{PACKAGE}.{self.name}"

    @property
    def error(self) -> str | None:
        error = self.record[2] if self.record else None
        return error if isinstance(error, str) else None

    @property
    def plugins(self) -> list[list[object]]:
        """``[attribute, {kind id: name}, {field: value}]`` per plugin."""
        if not self.record:
            return []
        plugins = self.record[3]
        if not isinstance(plugins, list):
            return []
        if self.schemas is not None:
            plugins = _cache.decode_plugins(plugins, self.schemas)
            self.record = [*self.record[:3], plugins, self.record[4]]
            self.schemas = None
        return plugins


Item = tuple[str, str, list[object], bool, "str | None", "list[_cache.Schema] | None"]
"""``(name, path, record, from_cache, shadowed_by, schemas)``: a module as the scan saw it,
kept as a plain tuple (the warm path makes one per module); see :class:`ModuleResult`."""


class Run:
    """A cache's run of plugins of one shape, read by name from its (checked) list
    ``[schema index, [module index, ...], [attribute, ...], [name, ...] per kind,
    [value, ...] per field]``: ``names`` holds a column per kind of ``schema.kinds``,
    ``values`` one per field of ``schema.fields``."""

    __slots__ = ("attributes", "index", "modules", "names", "schema", "values")

    def __init__(self, run: list[Any], schemas: list[_cache.Schema]) -> None:
        self.index: int = run[0]
        self.schema = schema = schemas[run[0]]
        self.modules: list[int] = run[1]
        self.attributes: list[str] = run[2]
        k = 3 + len(schema.kinds)
        self.names: list[list[str]] = run[3:k]
        self.values: list[list[str]] = run[k:]

    def compact(self) -> list[tuple[int, list[object]]]:
        """``(module index, compact description)`` per plugin, in order."""
        index, count = self.index, len(self.modules)
        return [
            (module, [attribute, index, *names, *values])
            for module, attribute, names, values in zip(
                self.modules,
                self.attributes,
                zip(*self.names, strict=True) if self.names else [()] * count,
                zip(*self.values, strict=True) if self.values else [()] * count,
                strict=True,
            )
        ]


Table = tuple[list[str], list[int], list[Run], list[_cache.Schema]]
"""A whole current folder straight from its cache: ``(names, stamps, runs, schemas)``,
the plugins in runs of one shape (see the module docstring)."""


class FolderScan:
    """The modules of one folder, in name order, and where its cache lives.

    A folder found current as a whole keeps the cache's ``table`` and makes its
    ``items`` (one tuple per module) only when someone asks for them: listing
    the plugins needs none.
    """

    __slots__ = ("_items", "_modules", "cache_file", "document", "folder", "table")

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.table: Table | None = None
        self._items: list[Item] | None = None
        self._modules: list[ModuleResult] | None = None
        self.cache_file: str | None = None
        self.document: dict[str, object] | None = None
        """The cache document found beside the folder (``None`` if none was valid)."""

    @property
    def items(self) -> list[Item]:
        """The modules as :data:`Item` tuples."""
        if self._items is None:
            self._items = _table_items(self.folder, self.table) if self.table else []
        return self._items

    @property
    def modules(self) -> list[ModuleResult]:
        """The modules as :class:`ModuleResult` objects (made when first asked for)."""
        if self._modules is None:
            self._modules = [
                ModuleResult(name, path, record, from_cache, shadowed_by=by, schemas=schemas)
                for name, path, record, from_cache, by, schemas in self.items
            ]
        return self._modules


def _table_items(folder: str, table: Table) -> list[Item]:
    """The items of a folder that was current as a whole (no errors, nothing shadowed)."""
    names, stamps, runs, schemas = table
    per_module = _per_module(runs, len(names))
    prefix = os.path.join(folder, "")
    return [
        (name, prefix + name + ".py", [size, mtime_ns, None, found, None], True, None, schemas)
        for name, size, mtime_ns, found in zip(
            names, stamps[0::2], stamps[1::2], per_module, strict=True
        )
    ]


def _per_module(runs: list[Run], count: int) -> list[list[list[object]]]:
    """Checked runs as each module's compact descriptions ``[attribute, schema index, ...]``."""
    per_module: list[list[list[object]]] = [[] for _ in range(count)]
    for run in runs:
        for module, plugin in run.compact():
            per_module[module].append(plugin)
    return per_module


def beside_cache_file(folder: str) -> str:
    """The cache file kept inside a writable drop-in folder."""
    return os.path.join(folder, _cache.CACHE_NAME)


def user_cache_file(folder: str) -> str | None:
    """The cache file for ``folder`` in the user's cache directory."""
    return _cache.user_cache_file("folder", folder)


class _Cached:
    """The module records of one cache document, checked one by one when asked.

    ``modules`` maps a name to ``[size, mtime_ns, error, plugins, environment]``,
    the plugins compact (``[attribute, schema index, ...]``): the document's
    flat lists regrouped per module, for the module-by-module path.
    """

    __slots__ = ("modules", "schemas")

    def __init__(self, document: dict[str, object] | None, folder: str | None) -> None:
        self.modules: dict[str, list[object]] = {}
        self.schemas: list[_cache.Schema] = []
        if document is None or (folder is not None and document.get("folder") != folder):
            return
        schemas = _cache.read_schemas(document.get("schemas"))
        if schemas is None:
            return
        modules = _records(document, schemas)
        if modules is not None:
            self.modules = modules
            self.schemas = schemas

    def fresh(self, name: str, size: int, mtime_ns: int) -> list[object] | None:
        """The (compact) record of ``name`` if it still describes the file, here.

        An import error often depends on the environment (a missing
        dependency), while one folder can serve several (a system folder seen
        from a venv), so an error only counts in the environment
        (``sys.prefix``) that met it; elsewhere the module is tried again.
        """
        record = self.modules.get(name)
        if (
            type(record) is not list
            or len(record) != 5
            or record[0] != size
            or record[1] != mtime_ns
        ):
            return None
        error = record[2]
        if error is None:
            if record[4] is None and _cache.valid_compact(record[3], self.schemas):
                return record
            return None
        if type(error) is str and record[3] == [] and record[4] == sys.prefix:
            return record
        return None


def _names_and_stamps(document: dict[str, object]) -> tuple[list[str], list[int]] | None:
    """The document's module names and stamps, if well formed."""
    names, stamps = document.get("modules"), document.get("stamps")
    if type(names) is not list or type(stamps) is not list or len(stamps) != 2 * len(names):
        return None
    try:
        "".join(names)
    except TypeError:
        return None
    return names, stamps


def _valid_runs(runs: object, schemas: list[_cache.Schema], modules: int) -> bool:
    """Whether ``runs`` is a well-formed ``"plugins"`` list for ``modules`` modules.

    This runs on every start-up, so each run is checked a column at a time, in
    C (``map``, ``set``, ``sorted``, and ``str.join`` for the strings), without
    building anything but a few sets: types, lengths, module order.
    """
    if type(runs) is not list:
        return False
    last = 0
    try:
        for run in runs:
            if type(run) is not list or len(run) < 3:
                return False
            index, order = run[0], run[1]
            if (
                type(index) is not int
                or not 0 <= index < len(schemas)
                or len(run) != schemas[index].size + 1
                or set(map(type, run[1:])) != {list}
                or len(set(map(len, run[1:]))) != 1
                or not order
                or set(map(type, order)) != {int}
                or not last <= order[0] <= order[-1] < modules
                or order != sorted(order)
            ):
                return False
            last = order[-1]
            for column in run[2:]:
                "".join(column)
    except (TypeError, ValueError):
        return False
    return True


def _current_table(
    document: dict[str, object] | None, names: list[str], stamps: list[int]
) -> Table | None:
    """The whole folder from ``document`` if it describes exactly these files, none broken."""
    if (
        document is None
        or document.get("modules") != names
        or document.get("stamps") != stamps
        or document.get("errors") != []
    ):
        return None
    schemas = _cache.read_schemas(document.get("schemas"))
    runs = document.get("plugins")
    if schemas is None or not _valid_runs(runs, schemas, len(names)):
        return None
    assert isinstance(runs, list)
    return names, stamps, [Run(run, schemas) for run in runs], schemas


def _records(
    document: dict[str, object], schemas: list[_cache.Schema]
) -> dict[str, list[object]] | None:
    """The document's flat lists regrouped per module; ``None`` if anything is malformed."""
    found = _names_and_stamps(document)
    errors, plugins = document.get("errors"), document.get("plugins")
    if found is None or type(errors) is not list:
        return None
    names, stamps = found
    if not _valid_runs(plugins, schemas, len(names)):
        return None
    assert isinstance(plugins, list)
    runs = [Run(run, schemas) for run in plugins]
    records: list[list[object]] = [
        [size, mtime_ns, None, found, None]
        for size, mtime_ns, found in zip(
            stamps[0::2], stamps[1::2], _per_module(runs, len(names)), strict=True
        )
    ]
    try:
        for index, error, environment in errors:
            if type(index) is not int or not 0 <= index < len(records):
                return None
            record = records[index]
            record[2], record[4] = error, environment
    except (TypeError, ValueError):
        return None
    return dict(zip(names, records, strict=True))


Final = dict[str, tuple[list[object], "list[_cache.Schema] | None"]]
"""The records a folder's cache should hold: name -> (record, schemas if compact)."""


def _document(folder: str, final: Final) -> dict[str, object]:
    """The cache document for ``folder`` holding the records of ``final``."""
    shapes: dict[_cache.Schema, int] = {}
    names = sorted(final)
    stamps: list[object] = []
    errors: list[list[object]] = []
    runs: list[list[Any]] = []
    for index, name in enumerate(names):
        record, schemas = final[name]
        size, mtime_ns, error, plugins, environment = record
        assert isinstance(plugins, list)
        stamps += (size, mtime_ns)
        if error is not None:
            errors.append([index, error, environment])
        if schemas is not None:
            plugins = _cache.decode_plugins(plugins, schemas)
        for attribute, shape, *values in _cache.encode_plugins(plugins, shapes):
            if not runs or runs[-1][0] != shape:
                runs.append([shape, [], [], *([] for _ in values)])
            run = runs[-1]
            run[1].append(index)
            run[2].append(attribute)
            for column, value in zip(run[3:], values, strict=True):
                column.append(value)
    return {
        "folder": folder,
        "schemas": _cache.schema_table(shapes),
        "modules": names,
        "stamps": stamps,
        "errors": errors,
        "plugins": runs,
    }


def _racy(mtime_ns: int, now_ns: int) -> bool:
    """Whether a whole-second mtime is so recent that an edit could hide behind it."""
    return mtime_ns % 1_000_000_000 == 0 and now_ns - mtime_ns < _RACY_NS


def scan_folder(folder: str, taken: dict[str, str], *, force: bool = False) -> FolderScan:
    """Scan ``folder`` through its cache, importing only new or changed modules.

    ``taken`` maps module names already provided by earlier folders to those
    folders; such names here are shadowed, reported but never imported. Names
    this folder provides are added to ``taken``. With ``force``, every
    module is imported and the cache rewritten (what packagers run).
    """
    scan = FolderScan(folder)
    names, stamps = module_files(folder)
    beside_path = beside_cache_file(folder)
    scan.document = None if force else _cache.read(beside_path)
    if not taken or taken.keys().isdisjoint(names):
        # The usual start: every file as the cache beside the folder describes it.
        scan.table = _current_table(scan.document, names, stamps)
        if scan.table is not None:
            taken.update(dict.fromkeys(names, folder))
            scan.cache_file = beside_path
            return scan
    return _scan_modules(scan, names, stamps, taken, force)


def _scan_modules(
    scan: FolderScan, names: list[str], stamps: list[int], taken: dict[str, str], force: bool
) -> FolderScan:
    """:func:`scan_folder` module by module, when the folder is not current as a whole."""
    folder = scan.folder
    items: list[Item] = []
    scan._items = items
    beside_path = beside_cache_file(folder)
    beside = _Cached(scan.document, None)
    user_path: str | None = None  # computed only when the beside cache falls short
    user: _Cached | None = _Cached(None, None) if force else None

    held: Final = {}  # records of shadowed modules, kept in the cache all the same
    racy: set[str] = set()  # imported modules whose record must not be cached yet
    kept = 0  # records the cache should hold (the items' and ``held``)
    all_beside = not force
    now_ns = 0
    get = beside.modules.get
    schemas = beside.schemas
    valid_compact = _cache.valid_compact
    prefix = os.path.join(folder, "")
    for name, size, mtime in zip(names, stamps[0::2], stamps[1::2], strict=True):
        path = prefix + name + ".py"  # module_path, without a call per module
        record = get(name)
        cached: _Cached | None = beside
        # The common case inline (a current record of a module without error);
        # anything else goes through _Cached.fresh.
        if not (
            record is not None
            and record[0] == size
            and record[1] == mtime
            and record[2] is None
            and record[4] is None
            and valid_compact(record[3], schemas)
        ):
            record = beside.fresh(name, size, mtime)
            if record is None:
                all_beside = False
                if user is None:
                    user_path = user_cache_file(folder)
                    user = _Cached(_cache.read(user_path) if user_path else None, folder)
                record = user.fresh(name, size, mtime)
                cached = user if record is not None else None
        winner = taken.get(name)
        if winner is not None:
            if record is not None and cached is not None:
                held[name] = (record, cached.schemas)
                kept += 1
            items.append((name, path, [], True, module_path(winner, name), None))
            continue
        taken[name] = folder
        if record is not None and cached is not None:
            kept += 1
            items.append((name, path, record, True, None, cached.schemas))
            continue
        from tapster.plugin._load import scan_module  # the slow path only

        error, plugins = scan_module(f"{PACKAGE}.{name}", path, (size, mtime))
        fresh: list[object] = [size, mtime, error, plugins, None if error is None else sys.prefix]
        items.append((name, path, fresh, False, None, None))
        now_ns = now_ns or time.time_ns()
        if _racy(mtime, now_ns):
            racy.add(name)
        else:
            kept += 1

    if all_beside and kept == len(beside.modules):
        scan.cache_file = beside_path
        return scan
    final: Final = {
        name: (record, schemas)
        for name, _, record, _, shadowed_by, schemas in items
        if shadowed_by is None and name not in racy
    }
    final.update(held)
    if user is None:  # e.g. a module was removed: the user's copy may already say so
        user_path = user_cache_file(folder)
        user = _Cached(_cache.read(user_path) if user_path else None, folder)
    if not force and user_path is not None and _same_records(final, user):
        scan.cache_file = user_path
        return scan
    if user_path is None:
        user_path = user_cache_file(folder)
    document = _document(folder, final)
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


def _same_records(final: Final, cached: _Cached) -> bool:
    """Whether ``cached`` holds exactly the records of ``final`` (nothing to write)."""
    if len(final) != len(cached.modules):
        return False
    for name, (record, schemas) in final.items():
        size, mtime_ns = record[0], record[1]
        assert isinstance(size, int) and isinstance(mtime_ns, int)
        theirs = cached.fresh(name, size, mtime_ns)
        if theirs is None:
            return False
        if theirs is record and schemas is cached.schemas:
            continue
        if _plain(record, schemas) != _plain(theirs, cached.schemas):
            return False
    return True


def _plain(record: list[object], schemas: list[_cache.Schema] | None) -> list[object]:
    """``record`` with its plugins in the plain layout, for comparing."""
    plugins = record[3]
    if schemas is not None and isinstance(plugins, list):
        plugins = _cache.decode_plugins(plugins, schemas)
    return [*record[:3], plugins, record[4]]


def store_shared(folder: str, key: str, value: object) -> bool:
    """Keep ``value`` under ``key`` in ``folder``'s own cache file; return whether it worked.

    Used for the entry point cache, so that what a packager's
    ``rebuild_caches`` found serves users who have no cache directory.
    Only the folder's own cache file is tried (never the user's).
    """
    path = beside_cache_file(folder)
    document = _cache.read(path)
    if document is None:
        document = _document(folder, {})
    document[key] = value
    return _cache.write(path, document)
