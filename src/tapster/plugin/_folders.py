"""Where drop-in plugin modules live: every ``tapster/plugins/`` folder on ``sys.path``.

This module is imported by the ``tapster.plugins`` package itself to build its
``__path__``, so it must stay cheap: ``os`` and ``sys`` only.
"""

from __future__ import annotations

import os
import stat
import sys
from itertools import compress

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


def module_files(folder: str) -> tuple[list[str], list[int]]:
    """The plugin modules directly in ``folder``: their names, sorted, and their stamps.

    The stamps are flat, ``[size, mtime_ns, size, mtime_ns, ...]`` in the order of
    the names, so that a cache can be checked against them with one list
    comparison. Only regular ``NAME.py`` files whose NAME is a valid module
    name count; ``__init__.py`` does not. An unreadable folder holds no
    modules. Files are stat'ed relative to the open folder, which saves the
    kernel a path walk per file: this runs for every module on every start-up.
    """
    names: list[str] = []
    stamps: list[int] = []
    try:
        fd = os.open(folder, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC) if _RELATIVE_STAT else None
    except OSError:
        return names, stamps
    try:
        files = os.listdir(folder if fd is None else fd)
        stems = _stems(files)
        prefix = os.path.join(folder, "") if fd is None else ""
        add_name, add_stamp = names.append, stamps.append
        for stem in stems:
            try:
                st = os.stat(prefix + stem + ".py", dir_fd=fd)
            except OSError:
                continue
            if st.st_mode & _S_IFMT == _S_IFREG:  # stat.S_ISREG, without a call
                add_name(stem)
                add_stamp(st.st_size)
                add_stamp(st.st_mtime_ns)
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)
    return names, stamps


def _stems(files: list[str]) -> list[str]:
    """The module names of a folder's ``NAME.py`` files, sorted.

    Filtered with ``map`` and ``itertools.compress`` (in C): a folder may hold
    a thousand modules, and this runs on every start-up.
    """
    count = len(files)
    sources = list(compress(files, map(str.endswith, files, [".py"] * count)))
    stems = list(map(str.removesuffix, sources, [".py"] * len(sources)))
    if not all(map(str.isidentifier, stems)):
        stems = list(compress(stems, map(str.isidentifier, stems)))
    if "__init__" in stems:
        stems.remove("__init__")
    stems.sort()
    return stems


def module_path(folder: str, name: str) -> str:
    """The file of module ``name`` of a drop-in ``folder``."""
    return os.path.join(folder, name + ".py")


_S_IFMT = 0o170000
_S_IFREG = stat.S_IFREG
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


# Twisted's plugin folders (tapster.twisted_compat lists their plugins): found here, on
# the --help path, with a few stat calls, so that a machine without Twisted pays no import.


def twisted_package(path: list[str] | None = None) -> str | None:
    """The folder of the ``twisted`` package ``import twisted`` would find, or ``None``."""
    entries: list[object] = list(sys.path if path is None else path)
    for entry in entries:
        if not isinstance(entry, str):
            continue
        folder = os.path.join(os.path.abspath(entry or os.curdir), "twisted")
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            return folder
    return None


def twisted_folders(path: list[str] | None = None) -> list[str]:
    """Twisted's plugin folders, its own first; empty when Twisted is not importable."""
    package = twisted_package(path)
    if package is None:
        return []
    own = os.path.join(package, "plugins")
    folders = [own]
    entries: list[object] = list(sys.path if path is None else path)
    for entry in entries:
        if not isinstance(entry, str):
            continue
        folder = os.path.join(os.path.abspath(entry or os.curdir), "twisted", "plugins")
        if (
            folder not in folders
            and os.path.isdir(folder)
            and not os.path.exists(os.path.join(folder, "__init__.py"))
        ):
            folders.append(folder)
    return folders
