"""``tapster --print-config``: the effective settings, where each came from, secrets masked.

The output is itself a config file (TOML), one ``name = value`` line per option
with its origin as a comment (``# default``, ``# environment TAPSTER_LOG_LEVEL``,
``# tapster.toml line 7``, ``# command line``), so it can be saved and edited.
An option the declaration marks secret (``tapster.usage.coerce.secret``), one
whose name says so (``password``, ``token``...) and any value read from a file
is shown masked.
"""

from __future__ import annotations

import sys

from tapster.config._names import is_repeatable, is_secret
from tapster.config._toml import toml_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from tapster.config._sources import Config, Level, Setting
    from tapster.usage import Options
    from tapster.usage._declarations import Option

__all__ = ["config_text", "print_config"]

MASK = "***"


def print_config(options: Options) -> int:
    """Write :func:`config_text` to stdout; 0, or 1 when it cannot be written."""
    try:
        sys.stdout.write(config_text(options))
        sys.stdout.flush()
    except OSError as error:
        if not isinstance(error, BrokenPipeError):
            sys.stderr.write(f"tapster: cannot write to standard output: {error.strerror}\n")
        return 1
    return 0


def config_text(options: Options) -> str:
    """The runner's and the subcommand's settings, as TOML with their origins as comments."""
    config: Config = options.config_sources  # type: ignore[attr-defined]
    lines = ["# tapster --print-config: the effective settings and where each came from"]
    for level in config.levels:
        if level.name is None:
            if options.subcommand is not None:
                origin = config.subcommand_origin or "command line"
                lines.append(f"{_pad('subcommand = ' + _value(options.subcommand))}# {origin}")
        else:
            lines += ["", f"[{toml_key(level.name)}]"]
        lines += [_line(level, key) for key in sorted(level.settable)]
    return "\n".join(lines) + "\n"


def _line(level: Level, key: str) -> str:
    option = level.settable[key]
    setting = level.settings.get(key)
    if setting is None:
        value = _default(option)
        if value is None:
            return f"# {key} is not set (default)"
        return f"{_pad(f'{toml_key(key)} = {value}')}# default"
    return f"{_pad(f'{toml_key(key)} = {_given(option, setting)}')}# {setting.origin}"


def _default(option: Option) -> str | None:
    if not option.takes_value:
        return "false"
    if is_repeatable(option) and option.default is None:
        return "[]"
    if option.default is None:
        return None
    if is_secret(option):
        return _value(MASK)
    return _value(option.default)


def _given(option: Option, setting: Setting) -> str:
    if not option.takes_value:
        return "true" if setting.raws else "false"
    mark = is_secret(option) or setting.from_file
    shown = [value if not mark else _masked(mark, str(value)) for value in setting.typed]
    if is_repeatable(option):
        return "[" + ", ".join(_value(item) for item in shown) + "]"
    return _value(shown[-1]) if shown else '""'


def _masked(mark: object, raw: str) -> str:
    if callable(mark):
        return str(mark(raw))
    return MASK


def _value(value: Any) -> str:
    import json  # only here: --print-config

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _pad(text: str) -> str:
    return text.ljust(39) + " " if len(text) < 40 else text + "  "
