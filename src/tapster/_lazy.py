"""Lazy package exports: a name's module is imported on first use, then cached.

Packages on the start-up path (``tapster.service``, ``tapster.internet``,
``tapster.endpoints``) re-export names from private modules. Importing every
private module up front would pull ``asyncio`` and friends into places that need
one class, so each package hands :func:`lazy_exports` a table of ``name ->
private module`` and installs the two functions it returns as its module
``__getattr__`` and ``__dir__`` (PEP 562).

Modules that code imports inside a function, on first use (a directory
listing's ``html`` and ``json``, ``gzip``), are named to :func:`import_later`
so that :func:`import_deferred` can load them all while the library is still
in reach: the runner calls it before it enters a ``chroot`` or switches to
another user, either of which may put the library out of reach.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package`` exporting ``homes``' names."""
    namespace = sys.modules[package].__dict__

    def getattr_(name: str) -> object:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = f"{package}.{home}"
        __import__(module)
        value = getattr(sys.modules[module], name)
        namespace[name] = value  # found once; later lookups are plain attribute reads
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *homes})

    return getattr_, dir_


_deferred: list[str] = []


def import_later(*modules: str) -> None:
    """Record ``modules`` as imported on first use, not when their user is imported."""
    _deferred.extend(modules)


def import_deferred() -> None:
    """Import every module named to :func:`import_later` (before a ``chroot`` or uid switch)."""
    for name in _deferred:
        __import__(name)
