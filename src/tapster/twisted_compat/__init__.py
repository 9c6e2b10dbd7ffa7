"""Run existing ``twistd`` plugins (``twisted/plugins/``, ``IServiceMaker``) under tapster.

Only when Twisted is importable. Listing them (``tapster --help``) reads
tapster's own JSON cache and imports neither Twisted nor the plugin modules;
a changed folder is scanned in a child process (:mod:`._probe`), so that the
runner's process never imports Twisted or a plugin module just to list them.
Running one installs Twisted's asyncio reactor on tapster's event loop
(:mod:`._reactor`), parses the plugin's own ``usage.Options``
(:mod:`._maker`) and wraps its ``IService`` in a tapster service
(:mod:`._service`). See docs/from-twisted.md.
"""
