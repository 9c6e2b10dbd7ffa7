"""Temporary plugin folders for either side, and the ready-made Twisted plugins in bench/.

Twisted finds drop-in plugins in any ``twisted/plugins/`` folder (without ``__init__.py``) on
``sys.path``, so the twistd side gets ``PYTHONPATH=<root>``. tapster finds ``tapster/plugins/``
folders the same way, and its runner also looks in the current directory (``--app-dir``), so the
tapster side can run with ``cwd=<root>`` and no ``PYTHONPATH``, as a user would.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

TWISTED_PLUGINS = Path(__file__).resolve().parent / "twisted_plugins" / "twisted" / "plugins"
"""Ready-made Twisted plugins for the twistd side (see ``bench/README.md``)."""
TAPSTER_PLUGINS = Path(__file__).resolve().parent / "tapster_plugins" / "tapster" / "plugins"
"""Their tapster counterparts (same names, options and behaviour)."""


def _write_modules(folder: Path, modules: Mapping[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        if not name.isidentifier():
            raise ValueError(f"plugin module name {name!r} is not a Python identifier")
        (folder / f"{name}.py").write_text(source)


def twisted_plugin_dir(root: Path, modules: Mapping[str, str]) -> dict[str, str]:
    """Write ``root/twisted/plugins/<name>.py`` for each module; return the env for twistd.

    The returned mapping (``{"PYTHONPATH": str(root)}``) goes to ``ctx.env(extra)``.
    """
    _write_modules(root / "twisted" / "plugins", modules)
    return {"PYTHONPATH": str(root)}


def tapster_plugin_dir(root: Path, modules: Mapping[str, str]) -> Path:
    """Write ``root/tapster/plugins/<name>.py`` for each module; return ``root``.

    Run tapster with ``cwd=root`` (its default ``--app-dir``) or ``PYTHONPATH=root``.
    """
    _write_modules(root / "tapster" / "plugins", modules)
    return root


def bundled_twisted_plugins(root: Path, *names: str) -> dict[str, str]:
    """Copy ready-made Twisted plugins (e.g. ``"bench_echo"``) into ``root``; return the env.

    Copying keeps Twisted's ``dropin.cache`` out of the source tree.
    """
    modules = {}
    for name in names:
        path = TWISTED_PLUGINS / f"{name}.py"
        if not path.is_file():
            raise ValueError(f"no bundled Twisted plugin {name!r} in {TWISTED_PLUGINS}")
        modules[name] = path.read_text()
    return twisted_plugin_dir(root, modules)


def bundled_tapster_plugins(root: Path, *names: str) -> Path:
    """Copy ready-made tapster plugins (e.g. ``"bench_echo"``) into ``root``; return ``root``.

    Run tapster with ``--app-dir root`` (or ``cwd=root``).
    """
    modules = {}
    for name in names:
        path = TAPSTER_PLUGINS / f"{name}.py"
        if not path.is_file():
            raise ValueError(f"no bundled tapster plugin {name!r} in {TAPSTER_PLUGINS}")
        modules[name] = path.read_text()
    return tapster_plugin_dir(root, modules)


def twisted_maker_source(tapname: str, description: str = "A generated plugin.") -> str:
    """Source of a Twisted plugin module defining one service maker ``tapname``.

    Like a real plugin module it imports what a service maker needs (``IServiceMaker``,
    ``IPlugin``, ``usage``) at module level; the service itself is built only when run.
    """
    return (
        "from twisted.application.service import IServiceMaker, Service\n"
        "from twisted.plugin import IPlugin\n"
        "from twisted.python import usage\n"
        "from zope.interface import implementer\n\n\n"
        "class Options(usage.Options):\n"
        '    optParameters = [["port", "p", 0, "Port.", int]]\n\n\n'
        "@implementer(IServiceMaker, IPlugin)\n"
        "class Maker:\n"
        f"    tapname = {tapname!r}\n"
        f"    description = {description!r}\n"
        "    options = Options\n\n"
        "    def makeService(self, options):\n"
        "        return Service()\n\n\n"
        "maker = Maker()\n"
    )


def tapster_maker_source(tapname: str, description: str = "A generated plugin.") -> str:
    """Source of a tapster plugin module defining one service maker ``tapname``.

    The counterpart of :func:`twisted_maker_source`: same shape, tapster's names.
    """
    return (
        "from tapster.service import Service, ServiceMaker\n"
        "from tapster.usage import Options\n\n\n"
        "class _Options(Options):\n"
        '    parameters = [("port", "p", 0, "Port.", int)]\n\n\n'
        "class _Maker(ServiceMaker):\n"
        f"    tapname = {tapname!r}\n"
        f"    description = {description!r}\n"
        "    options = _Options\n\n"
        "    def make_service(self, options):\n"
        "        return Service()\n\n\n"
        "maker = _Maker()\n"
    )


def clear_plugin_caches(root: Path) -> None:
    """Delete both sides' plugin caches under ``root`` (for cold-cache runs).

    Twisted's ``twisted/plugins/dropin.cache`` and tapster's
    ``tapster/plugins/.tapster-plugin-cache.json`` (a folder that is not writable keeps its
    tapster cache in ``$XDG_CACHE_HOME/tapster`` instead: point that at a scratch folder).
    """
    for path in (
        root / "twisted" / "plugins" / "dropin.cache",
        root / "tapster" / "plugins" / ".tapster-plugin-cache.json",
    ):
        path.unlink(missing_ok=True)


def clear_dir(path: Path) -> None:
    """Remove ``path`` and everything under it, if it exists."""
    shutil.rmtree(path, ignore_errors=True)
