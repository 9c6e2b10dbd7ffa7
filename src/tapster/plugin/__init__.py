"""Plugin discovery: drop-in folders, entry points, and a cache that stays out of the way.

A plugin is a module-level object that is an instance of a plugin kind (a
:class:`PluginKind` subclass), found in a module of the ``tapster.plugins``
package (whose ``__path__`` covers every ``tapster/plugins/`` folder on
``sys.path``) or named by an entry point in the group ``tapster.plugins``.

``describe_plugins`` answers from a JSON cache without importing any plugin
module when nothing changed; ``get_plugins`` imports and returns the objects.
See docs/plugins.md.
"""

from tapster.plugin._folders import plugin_folders
from tapster.plugin._registry import (
    PluginInfo,
    PluginProblem,
    describe_plugins,
    get_plugins,
    plugin_problems,
    rebuild_caches,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.plugin._kind import PluginKind
    from tapster.plugin._report import PluginReport, plugin_report

__all__ = [
    "PluginInfo",
    "PluginKind",
    "PluginProblem",
    "PluginReport",
    "describe_plugins",
    "get_plugins",
    "plugin_folders",
    "plugin_problems",
    "plugin_report",
    "rebuild_caches",
]

# Imported when first asked for: listing plugins from the cache (``tapster --help``)
# needs neither the kind base class nor the report.
_LAZY = {
    "PluginKind": "tapster.plugin._kind",
    "PluginReport": "tapster.plugin._report",
    "plugin_report": "tapster.plugin._report",
}


def __getattr__(name: str) -> object:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import sys

    __import__(home)
    value = getattr(sys.modules[home], name)
    globals()[name] = value
    return value
