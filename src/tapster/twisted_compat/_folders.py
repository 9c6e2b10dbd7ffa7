"""Where Twisted plugins live, found with a few ``stat`` calls and no import.

Twisted's own ``twisted/plugins`` package (the first ``twisted/__init__.py``
on ``sys.path``: where ``import twisted`` would look) comes first, then every
``ENTRY/twisted/plugins`` folder on ``sys.path`` that has no ``__init__.py``:
the same folders, in the same order, as ``twisted.plugins.__path__``.
"""

from __future__ import annotations

import os
import sys


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
