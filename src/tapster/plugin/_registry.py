"""The public face of discovery: describe, load, diagnose and rebuild plugins.

Order (documented in docs/plugins.md): drop-in plugins first, folder by
folder (tapster's own ``tapster/plugins`` first, then the others in
``sys.path`` order), modules by name within a folder, objects in the order
their module defines them; then entry point plugins, sorted by distribution
name and then entry point name.
"""

from __future__ import annotations

import gc
import sys

from tapster.plugin._dropin import SHARED_ENTRY_POINTS, FolderScan, scan_folder, store_shared
from tapster.plugin._entrypoints import EntryResult, scan_entry_points
from tapster.plugin._folders import PACKAGE, plugin_folders, sync_package_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeVar

    from tapster.plugin._cache import Schema
    from tapster.plugin._dropin import Run

    K = TypeVar("K")

_warned: set[str] = set()


class PluginInfo:
    """What is known about one plugin without importing it (when it came from the cache).

    ``name`` is the plugin's name for the kind it was asked about (its
    ``plugin_name_field``), ``fields`` the recorded string attributes,
    ``kinds`` the ids of every kind it is an instance of, ``origin`` the
    module's file or ``"DIST VERSION entry point NAME"``.
    """

    __slots__ = ("attribute", "fields", "from_cache", "kinds", "module", "name", "origin")

    def __init__(  # noqa: PLR0917 - positional: the warm path makes one per plugin
        self,
        name: str,
        fields: Mapping[str, str],
        kinds: tuple[str, ...],
        module: str,
        attribute: str,
        origin: str,
        from_cache: bool,
    ) -> None:
        self.name = name
        self.fields = fields
        self.kinds = kinds
        self.module = module
        self.attribute = attribute
        self.origin = origin
        self.from_cache = from_cache

    def load(self) -> object:
        """Import the plugin's module and return the plugin object."""
        from tapster.plugin._load import import_module, resolve

        if self.module.startswith(PACKAGE + "."):
            _prepare_package(plugin_folders())
        return resolve(import_module(self.module), self.attribute)

    def __repr__(self) -> str:
        return f"<PluginInfo {self.name!r} {self.module}:{self.attribute} from {self.origin}>"


class PluginProblem:
    """A broken, shadowed or duplicate plugin, with a one-line explanation.

    ``category`` is ``"broken"`` (the module raised on import, or an entry
    point names something that is not a plugin), ``"shadowed"`` (a drop-in
    module hidden by one of the same name in an earlier folder) or
    ``"duplicate"`` (a second plugin of one kind with the same name). Only
    broken ones (``broken`` is true) make ``tapster --plugins`` fail: the
    others are normal during development and are only reported.
    """

    __slots__ = ("category", "message", "module", "origin")

    def __init__(self, module: str, origin: str, message: str, category: str) -> None:
        self.module = module
        self.origin = origin
        self.message = message
        self.category = category

    @property
    def broken(self) -> bool:
        return self.category == "broken"

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"<PluginProblem {self.message!r}>"


class _Scan:
    __slots__ = ("entries", "folders")

    def __init__(self, folders: list[FolderScan], entries: list[EntryResult]) -> None:
        self.folders = folders
        self.entries = entries

    def plugins(self) -> list[tuple[list[object], str, str, bool]]:
        """``([attribute, kinds, fields], module, origin, from_cache)`` per plugin, in order."""
        found: list[tuple[list[object], str, str, bool]] = []
        for folder in self.folders:
            for m in folder.modules:
                if m.shadowed_by is None and m.record:
                    module = m.module
                    for p in m.plugins:
                        found.append((p, module, m.path, m.from_cache))
        for e in self.entries:
            module = e.module
            for p in e.plugins:
                found.append((p, module, e.origin, e.from_cache))
        return found

    def problems(self, *, duplicates: bool = True) -> list[PluginProblem]:
        """Broken and shadowed modules, then (with ``duplicates``) duplicate names."""
        problems: list[PluginProblem] = []
        for folder in self.folders:
            if folder.table is not None:
                continue  # current as a whole: nothing broken, nothing shadowed
            for name, path, record, _, shadowed_by, _ in folder.items:
                if shadowed_by is not None:
                    module = f"{PACKAGE}.{name}"
                    message = f"plugin module {module} at {path} is shadowed by {shadowed_by}"
                    problems.append(PluginProblem(module, path, message, "shadowed"))
                elif record and record[2] is not None:
                    module = f"{PACKAGE}.{name}"
                    message = f"plugin module {module} ({path}) is broken: {record[2]}"
                    problems.append(PluginProblem(module, path, message, "broken"))
        for e in self.entries:
            if e.error is not None:
                value = str(e.record["value"])
                message = f"plugin {value} ({e.origin}) is broken: {e.error}"
                problems.append(PluginProblem(value, e.origin, message, "broken"))
        if duplicates:
            problems.extend(self._duplicates())
        return problems

    def _duplicates(self) -> list[PluginProblem]:
        """A second plugin of a kind under a name already taken: tools take the first."""
        first: dict[tuple[str, str], str] = {}
        problems: list[PluginProblem] = []
        for plugin, module, origin, _ in self.plugins():
            attribute, kinds = plugin[0], plugin[1]
            assert isinstance(kinds, dict)
            for kind, name in kinds.items():
                where = f"{module}:{attribute} ({origin})"
                taken = first.setdefault((kind, name), where)
                if taken != where:
                    message = (
                        f"plugin {where} has the same {kind} name {name!r} as {taken},"
                        " which comes first and wins"
                    )
                    problems.append(PluginProblem(module, origin, message, "duplicate"))
        return problems


def _info(
    plugin: list[object], kind: str, module: str, origin: str, from_cache: bool
) -> PluginInfo:
    """A :class:`PluginInfo` from a cached ``[attribute, kinds, fields]`` description."""
    attribute, kinds, fields = plugin
    assert isinstance(attribute, str) and isinstance(kinds, dict) and isinstance(fields, dict)
    return PluginInfo(
        kinds[kind] or attribute, fields, tuple(kinds), module, attribute, origin, from_cache
    )


def _prepare_package(folders: list[str]) -> None:
    """Import ``tapster.plugins`` and point its ``__path__`` at ``folders``."""
    if PACKAGE not in sys.modules:
        __import__(PACKAGE)
    sync_package_path(folders)


def _scan(*, force: bool = False) -> _Scan:
    folders = plugin_folders()
    _prepare_package(folders)
    taken: dict[str, str] = {}
    scans = [scan_folder(folder, taken, force=force) for folder in folders]
    own = scans[0]
    shared = own.document.get(SHARED_ENTRY_POINTS) if own.document is not None else None

    def store(section: dict[str, object]) -> bool:
        return store_shared(own.folder, SHARED_ENTRY_POINTS, section)

    entries = scan_entry_points(force=force, shared=shared, store_shared=store)
    return _Scan(scans, entries)


class _CollectorPaused:
    """``with _CollectorPaused():`` runs its body with the garbage collector paused.

    A scan makes many objects that live on (parsed cache records, descriptions,
    and on a cold start every plugin module's classes and functions); each batch
    of them would set off a collection walking all of them again, to find no
    garbage. The public entry points below pause it (a process that had it off
    keeps it off); when and how the ``tapster`` process exits is decided in
    ``tapster.runner._main.command`` alone.
    """

    __slots__ = ("collecting",)

    def __enter__(self) -> None:
        self.collecting = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.collecting:
            gc.enable()


def warn_once(problems: list[PluginProblem]) -> None:
    """Log each broken plugin once per process (``logging`` is imported only then)."""
    fresh = [p for p in problems if p.broken and p.message not in _warned]
    if not fresh:
        return
    import logging

    logger = logging.getLogger("tapster.plugin")
    for problem in fresh:
        _warned.add(problem.message)
        logger.warning("tapster: %s", problem.message)


def describe_plugins(kind: type | str) -> list[PluginInfo]:
    """Every plugin of ``kind`` (a kind class or its ``plugin_kind`` id), from the cache.

    Imports no plugin module when nothing changed since the cache was
    written. Broken plugin modules are logged once per process, as one line
    on the ``tapster.plugin`` logger.
    """
    if isinstance(kind, str):
        wanted = kind
    else:
        from tapster.plugin._kind import kind_id

        wanted = kind_id(kind)
    with _CollectorPaused():
        return _describe(wanted)


def _describe(wanted: str) -> list[PluginInfo]:
    scan = _scan()
    warn_once(scan.problems(duplicates=False))
    infos: list[PluginInfo] = []
    append = infos.append
    for folder in scan.folders:
        for name, path, record, from_cache, shadowed_by, schemas in folder.items:
            if shadowed_by is not None or not record:
                continue
            plugins = record[3]
            assert isinstance(plugins, list)
            if schemas is None:  # imported just now: the plain layout
                for plugin in plugins:
                    if wanted in plugin[1]:
                        append(_info(plugin, wanted, f"{PACKAGE}.{name}", path, from_cache))
                continue
            # Straight from the compact cache layout (the warm path: keep it lean).
            for plugin in plugins:
                schema = schemas[plugin[1]]
                kinds = schema.kinds
                if wanted in kinds:
                    append(
                        PluginInfo(
                            schema.names(plugin)[kinds.index(wanted)] or plugin[0],
                            dict(zip(schema.fields, schema.values(plugin), strict=True)),
                            kinds,
                            f"{PACKAGE}.{name}",
                            plugin[0],
                            path,
                            True,
                        )
                    )
    for e in scan.entries:
        for plugin in e.plugins:
            if wanted in plugin[1]:  # type: ignore[operator]
                append(_info(plugin, wanted, e.module, e.origin, e.from_cache))
    return infos


def describe_field(kind: str, field: str) -> tuple[list[str], list[str]]:
    """The names of every plugin of ``kind`` (an id) and their ``field`` (``""`` if none).

    The same plugins in the same order as :func:`describe_plugins`, with the
    same warnings, but as two lists and no :class:`PluginInfo`: what
    ``tapster --help`` needs to list a thousand commands.
    """
    with _CollectorPaused():
        return _describe_field(kind, field)


def _describe_field(wanted: str, field: str) -> tuple[list[str], list[str]]:
    scan = _scan()
    warn_once(scan.problems(duplicates=False))
    names: list[str] = []
    values: list[str] = []
    for folder in scan.folders:
        table = folder.table
        if table is not None:  # the warm path: whole columns of the cache
            _run_field(table[2], wanted, field, names, values)
            continue
        for _, _, record, _, shadowed_by, schemas in folder.items:
            if shadowed_by is not None or not record:
                continue
            plugins = record[3]
            assert isinstance(plugins, list)
            if schemas is None:  # imported just now: the plain layout
                _plain_field(plugins, wanted, field, names, values)
            else:
                _table_field(plugins, schemas, wanted, field, names, values)
    for e in scan.entries:
        _plain_field(e.plugins, wanted, field, names, values)
    return names, values


def _run_field(
    runs: list[Run], wanted: str, field: str, names: list[str], values: list[str]
) -> None:
    """:func:`_describe_field` for a cache's runs of plugins, a column at a time."""
    for run in runs:
        kinds, fields, _ = run.schema
        if wanted not in kinds:
            continue  # none of the kind
        found = run.names[kinds.index(wanted)]
        if "" in found:  # a plugin without a name: its attribute names it
            found = [
                name or attribute for name, attribute in zip(found, run.attributes, strict=True)
            ]
        names.extend(found)
        values.extend(run.values[fields.index(field)] if field in fields else [""] * len(found))


def _table_field(  # noqa: PLR0917 - internal, one call per module
    plugins: list[list[Any]],
    schemas: list[Schema],
    wanted: str,
    field: str,
    names: list[str],
    values: list[str],
) -> None:
    """:func:`_describe_field` for a module's compact descriptions ``[attribute, schema, ...]``."""
    for plugin in plugins:
        schema = schemas[plugin[1]]
        kinds, fields, _ = schema
        if wanted in kinds:
            names.append(schema.names(plugin)[kinds.index(wanted)] or plugin[0])
            values.append(schema.values(plugin)[fields.index(field)] if field in fields else "")


def _plain_field(
    plugins: list[list[object]], wanted: str, field: str, names: list[str], values: list[str]
) -> None:
    """:func:`_describe_field` for ``[attribute, {kind: name}, {field: value}]`` descriptions."""
    for attribute, kinds, fields in plugins:
        assert isinstance(attribute, str) and isinstance(kinds, dict)
        assert isinstance(fields, dict)
        if wanted in kinds:
            names.append(kinds[wanted] or attribute)
            values.append(fields.get(field, ""))


def get_plugins(kind: type[K]) -> list[K]:
    """Import and return every plugin object of ``kind``, in the documented order.

    A plugin that fails to load is logged and left out.
    """
    plugins: list[K] = []
    seen: set[int] = set()
    for info in describe_plugins(kind):
        try:
            obj = info.load()
        except (Exception, SystemExit) as exc:
            from tapster.plugin._load import error_line

            message = f"plugin {info.module}:{info.attribute} ({info.origin}) failed to load: "
            problem = PluginProblem(info.module, info.origin, message + error_line(exc), "broken")
            warn_once([problem])
            continue
        if isinstance(obj, kind) and id(obj) not in seen:
            seen.add(id(obj))
            plugins.append(obj)
    return plugins


def plugin_problems() -> list[PluginProblem]:
    """Every broken or shadowed plugin module, with one-line messages."""
    with _CollectorPaused():
        return _scan().problems()


def rebuild_caches() -> list[str]:
    """Import every plugin module afresh and rewrite every cache; return the files written.

    Twisted's plugin folders, when Twisted is installed, are scanned afresh too
    (their listing lives in the running user's cache folder).

    For packagers: run it (``tapster --rebuild-plugin-cache``) after
    installing, as the user who owns the installation, so that the caches
    beside read-only folders are ready for everyone.
    """
    with _CollectorPaused():
        scan = _scan(force=True)
    written = [f.cache_file for f in scan.folders if f.cache_file is not None]
    import os

    from tapster.plugin._entrypoints import cache_file

    ep_file = cache_file()
    if ep_file is not None and os.path.exists(ep_file):
        written.append(ep_file)
    from tapster.plugin._folders import twisted_folders

    folders = twisted_folders()
    if folders:
        # Twisted's plugin folders: this user's listing, scanned afresh.
        from tapster.twisted_compat import _scan as twisted_scan

        twisted_scan.scan(force=True)
        twisted_file = twisted_scan.cache_file(folders)
        if twisted_file is not None and os.path.exists(twisted_file):
            written.append(twisted_file)
    return written
