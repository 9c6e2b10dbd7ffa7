"""Settings from the environment and from TOML files, derived from the option declarations.

``TAPSTER_<OPTION>`` and ``TAPSTER_<SUBCOMMAND>_<OPTION>`` variables, and a
config file (``--config FILE``, ``tapster.toml``, ``[tool.tapster]`` in
``pyproject.toml``), set what the command line leaves unset, for the runner and
for every plugin, with no code in the plugin; ``--print-config`` shows the
result and where each value came from. Imported by the runner only once a
command line asks to run something (never for ``--help``), and then only the
modules that run needs: the runner imports ``tapster.config._sources`` and, for
``--print-config``, ``tapster.config._print``. See ``docs/configuration.md``.
"""
