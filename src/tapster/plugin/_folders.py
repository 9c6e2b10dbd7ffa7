"""Where drop-in plugin modules live: every ``tapster/plugins/`` folder on ``sys.path``.

This module is imported by the ``tapster.plugins`` package itself to build its
``__path__``, so it must stay cheap: ``os`` and ``sys`` only.
"""

from __future__ import annotations

import os
import stat
import sys

PACKAGE = "tapster.plugins"


def own_folder() -> str:
    """The folder of tapster's own ``tapster.plugins`` package (its built-in plugins)."""
    import tapster

    return os.path.join(os.path.dirname(os.path.abspath(tapster.__file__ or "")), "plugins")


def plugin_folders(path: list[str] | None = None) -> list[str]:
    """Every drop-in plugin folder, tapster's own first, then in ``sys.path`` order.

    A folder counts when ``ENTRY/tapster/plugins`` is a directory without an
    ``__init__.py`` (a folder with one is another copy of tapster itself).
    Relative entries (``""`` is the current directory) are made absolute.
    A folder reached twice (symlinks, repeated entries) is listed once.
    """
    own = own_folder()
    folders = [own]
    seen: set[tuple[int, int]] = set()
    try:
        st = os.stat(own)
        seen.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    entries: list[object] = list(sys.path if path is None else path)
    for entry in entries:
        if not isinstance(entry, str):
            continue
        candidate = os.path.join(os.path.abspath(entry or os.curdir), "tapster", "plugins")
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode) or key in seen:
            continue
        seen.add(key)
        if os.path.exists(os.path.join(candidate, "__init__.py")):
            continue
        folders.append(candidate)
    return folders


def module_files(folder: str) -> dict[str, tuple[str, int, int]]:
    """The plugin modules directly in ``folder``: name -> (path, size, mtime_ns).

    Only regular ``NAME.py`` files whose NAME is a valid module name count;
    ``__init__.py`` does not. An unreadable folder holds no modules. Files are
    stat'ed relative to the open folder, which saves the kernel a path walk
    per file: this runs for every module on every start-up.
    """
    found: dict[str, tuple[str, int, int]] = {}
    if not _RELATIVE_STAT:
        return _module_files_by_path(folder)
    try:
        fd = os.open(folder, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError:
        return found
    prefix = os.path.join(folder, "")
    try:
        names = os.listdir(fd)
        for name in names:
            if not name.endswith(".py"):
                continue
            stem = name[:-3]
            if not stem.isidentifier() or stem == "__init__":
                continue
            try:
                st = os.stat(name, dir_fd=fd)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[stem] = (prefix + name, st.st_size, st.st_mtime_ns)
    except OSError:
        pass
    finally:
        os.close(fd)
    return found


def _module_files_by_path(folder: str) -> dict[str, tuple[str, int, int]]:
    """:func:`module_files` for systems without ``dir_fd`` support."""
    found: dict[str, tuple[str, int, int]] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        stem = name[:-3]
        if name.endswith(".py") and stem.isidentifier() and stem != "__init__":
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[stem] = (path, st.st_size, st.st_mtime_ns)
    return found


_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_RELATIVE_STAT = os.stat in os.supports_dir_fd and os.listdir in os.supports_fd


def sync_package_path(folders: list[str]) -> None:
    """Make ``tapster.plugins.__path__`` list exactly ``folders`` (if it is imported)."""
    package = sys.modules.get(PACKAGE)
    if package is None:
        return
    current = getattr(package, "__path__", None)
    if isinstance(current, list) and current != folders:
        current[:] = folders
