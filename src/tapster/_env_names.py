"""What an option is called in the environment: the one place the rule is written.

``--max-body`` of ``tapster web`` is ``TAPSTER_WEB_MAX_BODY``, ``--log-level`` of the
runner ``TAPSTER_LOG_LEVEL``. ``tapster.config`` reads the variables by this rule and
``--help`` shows them ("[env: ...]"); as ``--help`` loads this module, it imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from tapster.usage._declarations import Option

__all__ = ["RUNNER_ONLY", "env_prefix", "has_sources", "variable_namer", "variable_stem"]

#: Runner options that act instead of running (or choose the sources): never set elsewhere.
RUNNER_ONLY = frozenset(
    {"plugins", "rebuild-plugin-cache", "completion", "print-config", "config"}
    | {"reload", "reload-include"}  # the reloader's child reads the same sources
)


def env_prefix(subcommand: str | None) -> str:
    """``TAPSTER_`` for the runner, ``TAPSTER_WEB_`` for ``web``.

    Every character of the subcommand's name outside ``[A-Za-z0-9]`` becomes ``_``
    (``twisted-web`` is ``TAPSTER_TWISTED_WEB_``).
    """
    if subcommand is None:
        return "TAPSTER_"
    name = "".join(c if c.isascii() and c.isalnum() else "_" for c in subcommand)
    return "TAPSTER_" + name.upper() + "_"


def variable_stem(name: str) -> str:
    """An option's long name as it follows the prefix: ``max-body`` is ``MAX_BODY``."""
    return name.upper().replace("-", "_")


def has_sources(name: str, runner: bool) -> bool:
    """Whether the option of long name ``name`` may come from the environment or a file.

    Every one except those that show something and exit (``--help``, ``--help-*``,
    ``--version``) and, for the runner, the actions of :data:`RUNNER_ONLY`.
    """
    if name == "help" or name.startswith("help-") or name == "version":
        return False
    return not (runner and name in RUNNER_ONLY)


def variable_namer(
    subcommand: str | None, runner: type | None = None
) -> Callable[[Option], str | None]:
    """For ``--help``: each option's variable, or None for one that has none.

    A subcommand's option whose variable is also one of the ``runner`` options class's
    (a plugin ``log`` with an option ``--level``) has none: the runner's option takes it.
    """
    prefix = env_prefix(subcommand)
    taken: set[str] | None = None  # the runner's variables, once needed

    def name(option: Option) -> str | None:
        nonlocal taken
        longs = option.longs
        if not longs or not has_sources(longs[0], subcommand is None):
            return None
        variable = prefix + variable_stem(longs[0])
        if runner is None:
            return variable
        if taken is None:
            from tapster.usage._declarations import class_spec

            spec = class_spec(runner)
            taken = {
                "TAPSTER_" + variable_stem(o.longs[0])
                for o in spec.options
                if o.longs and has_sources(o.longs[0], True)
            }
        return None if variable in taken else variable

    return name
