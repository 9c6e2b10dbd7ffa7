"""The config file: ``--config FILE``, else ``tapster.toml`` in the app directory, else
the ``[tool.tapster]`` table of its ``pyproject.toml``.

The file is TOML (``tomllib``). Its top level (``[tool.tapster]`` in
``pyproject.toml``) holds the runner's options and ``subcommand``; a table per
subcommand (``[web]``, ``[myproject]``) holds that plugin's options. ``tomllib``
keeps no positions, so :class:`ConfigFile` finds each key's line itself, for
messages such as ``tapster.toml, [web] max-body (line 7): ...``.
"""

from __future__ import annotations

import os

from tapster.usage import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ConfigFile", "find_config", "load_config", "toml_key"]

#: Far more than any settings file; a larger one is a mistake (or not a config file).
MAX_CONFIG_SIZE = 1 << 20

_QUOTES = ('"""', "'''")


class ConfigFile:
    """One parsed config file: its settings, where they sit, and how to name them."""

    def __init__(self, path: str, text: str, data: dict[str, Any], base: tuple[str, ...]) -> None:
        self.path = path
        self.shown = _shown(path)
        self.folder = os.path.dirname(os.path.abspath(path))
        self.base = base
        self.data = data
        self.lines = _key_lines(text)

    def table_title(self, table: str | None) -> str:
        """``[web]`` (``[tool.tapster.web]`` in ``pyproject.toml``); the top level is ``""``."""
        parts = self.base + ((table,) if table is not None else ())
        return "[" + ".".join(toml_key(p) for p in parts) + "]" if parts else ""

    def where(self, table: str | None, key: str) -> str:
        """``tapster.toml, [web] max-body (line 7)``, for messages."""
        title = self.table_title(table)
        line = self.line(table, key)
        at = f" (line {line})" if line else ""
        return f"{self.shown}, {title + ' ' if title else ''}{key}{at}"

    def origin(self, table: str | None, key: str) -> str:
        """``tapster.toml line 7``, for ``--print-config``."""
        line = self.line(table, key)
        return f"{self.shown} line {line}" if line else self.shown

    def line(self, table: str | None, key: str) -> int | None:
        """The line that sets ``key`` in ``table`` (None for the top level), if it can be found."""
        parts = self.base + ((table,) if table is not None else ())
        return self.lines.get((parts, key))


def find_config(explicit: str | None, explicit_where: str, folder: str | None) -> ConfigFile | None:
    """The config file to read, or None.

    ``explicit`` (from ``--config`` or ``$TAPSTER_CONFIG``, named by
    ``explicit_where`` in errors) must exist; otherwise ``tapster.toml`` in
    ``folder`` (the app directory; None when there is none), else its
    ``pyproject.toml`` when that has a ``[tool.tapster]`` table.
    """
    if explicit is not None:
        return load_config(explicit, explicit_where, ())
    if folder is None:
        return None
    own = os.path.join(folder, "tapster.toml")
    if os.path.exists(own):
        return load_config(own, _shown(own), ())
    project = os.path.join(folder, "pyproject.toml")
    if not os.path.exists(project):
        return None
    raw = _read(project, _shown(project))
    if b"tapster" not in raw:  # cheap: most projects' files say nothing to tapster
        return None
    found = _parse(project, raw)
    table = found[1].get("tool", {}).get("tapster")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UsageError(f"{_shown(project)}: tool.tapster must be a table ([tool.tapster])")
    return ConfigFile(project, found[0], table, ("tool", "tapster"))


def load_config(path: str, where: str, base: tuple[str, ...]) -> ConfigFile:
    """Read and parse the TOML file ``path``; each problem is a UsageError naming ``where``."""
    text, data = _parse(path, _read(path, where))
    return ConfigFile(path, text, data, base)


def _read(path: str, where: str) -> bytes:
    from tapster.runner._files import read_regular

    try:
        return read_regular(path, MAX_CONFIG_SIZE)
    except OSError as error:
        raise UsageError(f"{where}: cannot read the config file: {error.strerror}") from None


def _parse(path: str, raw: bytes) -> tuple[str, dict[str, Any]]:
    import tomllib

    shown = _shown(path)
    try:
        text = raw.decode("utf-8")
        return text, tomllib.loads(text)
    except UnicodeDecodeError as error:
        raise UsageError(f"{shown}: not UTF-8 text (byte {error.start})") from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{shown}: not valid TOML: {error}") from None


def _shown(path: str) -> str:
    """``path`` relative to the current folder when it is inside it, else absolute."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except ValueError:
        return absolute
    return absolute if relative.startswith("..") else relative


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare when it can be, else quoted."""
    bare = name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    return name if bare else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key_lines(text: str) -> dict[tuple[tuple[str, ...], str], int]:
    """Where each ``key = value`` line of a TOML text is: ``{((table parts), key): line}``.

    Good enough for messages: tables ``[a.b]``, bare and quoted keys, and lines
    inside multi-line strings skipped. A key written as a dotted key or inside
    an inline table gets no line (the message then names no line).
    """
    found: dict[tuple[tuple[str, ...], str], int] = {}
    table: tuple[str, ...] = ()
    in_string = ""
    for number, line in enumerate(text.splitlines(), 1):
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = ""
            continue
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            header = stripped[1:].split("]", 1)[0]
            table = tuple(_unquote(part.strip()) for part in _split_dotted(header))
            continue
        key, equals, value = stripped.partition("=")
        key = key.strip()
        if not equals or not key or key.startswith("#"):
            continue
        parts = _split_dotted(key)
        if len(parts) == 1:
            found.setdefault((table, _unquote(parts[0].strip())), number)
        for quote in _QUOTES:
            if value.count(quote) % 2 == 1:
                in_string = quote
    return found


def _split_dotted(text: str) -> list[str]:
    parts = [""]
    quote = ""
    for char in text:
        if quote:
            parts[-1] += char
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            parts[-1] += char
        elif char == ".":
            parts.append("")
        else:
            parts[-1] += char
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text
