"""A project folder with a third-party drop-in plugin that has no configuration code."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

GREETER = '''
"""A third-party plugin: options declared as usual, nothing about config files."""

from tapster.internet import TCPServer
from tapster.service import ServiceMaker
from tapster.usage import Options, port


class GreeterOptions(Options):
    parameters = [
        ("port", "p", 0, "The port.", port),
        ("greeting", None, "hello", "What to say."),
        ("password", None, None, "Not shown by --print-config."),
    ]
    flags = [("shout", None, "Say it loud.")]

    def __init__(self):
        super().__init__()
        self["names"] = []

    def opt_name(self, value):
        """Greet this one too (repeatable)."""
        if not value.isalpha():
            raise ValueError("a name is letters only")
        self["names"].append(value)


class GreeterMaker(ServiceMaker):
    tapname = "greet-er"
    description = "Greets whoever connects."
    options = GreeterOptions

    def make_service(self, options):
        text = " ".join([options["greeting"], *options["names"]])
        if options["shout"]:
            text = text.upper()

        async def handle(reader, writer):
            writer.write(text.encode() + b"\\n")
            await writer.drain()
            writer.close()

        return TCPServer(options["port"], handle, interface="127.0.0.1")


maker = GreeterMaker()
'''


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A folder (the cwd of the tests) whose ``tapster/plugins/`` holds ``greet-er``."""
    folder = tmp_path / "app"
    plugins = folder / "tapster" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "greeter_plugin.py").write_text(textwrap.dedent(GREETER))
    (folder / "site").mkdir()
    (folder / "site" / "index.html").write_text("configured\n")
    return folder
