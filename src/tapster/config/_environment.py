"""Values from ``TAPSTER_*`` environment variables, as the raw texts a command line would give.

A parameter's variable holds its value as typed after ``--name``; a flag's holds
``1``/``0``, ``true``/``false`` or ``yes``/``no``; a repeatable option's holds one
value, or several as a TOML array (``TAPSTER_WEB_LISTEN='["tcp:8080", "unix:web.sock"]'``),
the one list form that needs no escaping rules of its own. ``NAME_FILE`` instead of
``NAME`` reads the value from a file, so secrets need not sit in the environment.
"""

from __future__ import annotations

from tapster.usage import UsageError
from tapster.usage._parser import show

__all__ = ["RESERVED", "flag_value", "list_value", "tapster_variables"]

#: Variables tapster itself sets or reads that are not options: a worker's spec
#: (runner._roles), an upgrade's hand-over (supervisor._upgrade), --reload's child
#: (runner._reload), and the config file's own name.
RESERVED = frozenset(
    {
        "TAPSTER_WORKER",
        "TAPSTER_UPGRADE",
        "TAPSTER_CONFIG",
        "TAPSTER_RELOADED",
        "TAPSTER_RELOAD_WATCHER",
    }
)

_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})


def tapster_variables(environ: dict[str, str]) -> dict[str, str]:
    """The ``TAPSTER_*`` variables of ``environ`` that may name options."""
    return {
        name: value
        for name, value in environ.items()
        if name.startswith("TAPSTER_") and name not in RESERVED
    }


def flag_value(name: str, text: str) -> bool:
    """``1/0``, ``true/false``, ``yes/no`` (any case, spaces around ignored)."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise UsageError(f"{name}={show(text)}: expected 1 or 0, true or false, yes or no")


def list_value(name: str, text: str) -> list[str]:
    """One value, or a TOML array of them when ``text`` starts with ``[``."""
    if not text.lstrip().startswith("["):
        return [text]
    import tomllib

    try:
        parsed = tomllib.loads("v = " + text)
        if len(parsed) != 1:
            raise tomllib.TOMLDecodeError("text after the list")
        items = parsed["v"]
    except tomllib.TOMLDecodeError as error:
        reason = str(error).replace("(at line 1, ", "(at ")
        raise UsageError(
            f'{name}={show(text)}: not a list of values such as ["tcp:8080", "tcp:8443"]: {reason}'
        ) from None
    if not isinstance(items, list) or not all(
        isinstance(item, str | int | float) and not isinstance(item, bool) for item in items
    ):
        raise UsageError(f"{name}={show(text)}: expected a list of strings or numbers")
    return [str(item) for item in items]
