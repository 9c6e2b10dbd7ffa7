"""Which options other sources may set, and what each is called there.

One rule for the runner and every plugin, read from the option declarations alone
(``parameters``, ``flags``, ``opt_*`` handlers), so a plugin needs no code of its
own: an option ``--max-body`` of the subcommand ``web`` is ``TAPSTER_WEB_MAX_BODY``
in the environment and ``max-body`` in the ``[web]`` table of a config file. The
variable's name follows ``tapster._env_names``, which ``--help`` shares.
"""

from __future__ import annotations

from tapster._env_names import env_prefix, has_sources, variable_stem
from tapster.usage._declarations import class_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.usage import Options
    from tapster.usage._declarations import Option

__all__ = [
    "env_prefix",
    "file_key",
    "is_repeatable",
    "is_secret",
    "settable",
    "variable_stem",
]

#: Words that make an option's value a secret even when its declaration does not say so.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "credential")


def file_key(option: Option) -> str:
    """The option's name in a config file and in ``--print-config``: ``max-body``."""
    return option.longs[0] if option.longs else option.key


def settable(options: Options, runner: bool) -> dict[str, Option]:
    """The options of ``options`` other sources may set, by :func:`file_key`.

    Every option with a long name except those that show something and exit
    (``--help``, ``--help-*``, ``--version``) and, for the runner, the actions
    of ``tapster._env_names.RUNNER_ONLY``.
    """
    found: dict[str, Option] = {}
    for option in class_spec(type(options)).options:
        if not option.longs:
            continue
        name = option.longs[0]
        if has_sources(name, runner):
            found[name] = option
    return found


def is_repeatable(option: Option) -> bool:
    """A value-taking handler (``opt_listen``) is called once per value: a list elsewhere."""
    return option.takes_value and option.method is not None


def is_secret(option: Option) -> object:
    """The declared mask (a callable ``text -> shown text``), True for a secret, or False.

    A coercer or handler marks its option secret with a ``secret`` attribute (see
    ``tapster.usage.coerce.secret``); a name with a word such as ``password`` or
    ``token`` in it counts as secret too.
    """
    for source in (option.coerce, option.handler):
        mark = getattr(source, "secret", None)
        if mark:
            return mark
    name = file_key(option)
    return any(word in name for word in _SECRET_WORDS)
