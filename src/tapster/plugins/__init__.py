"""tapster's plugin package: built-in plugins, and every drop-in folder on ``sys.path``.

Modules here named ``tapster_<area>.py`` are tapster's own plugins. Any
``sys.path`` entry may add plugin modules by holding a folder
``tapster/plugins/`` WITHOUT an ``__init__.py``; this package's ``__path__``
is extended with those folders, in ``sys.path`` order, so that
``tapster.plugins.NAME`` imports a module from any of them (the first folder
holding ``NAME.py`` wins). See docs/plugins.md.
"""

from tapster.plugin._folders import plugin_folders

__path__ = plugin_folders()
