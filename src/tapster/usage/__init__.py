"""Declarative command-line options, in the style of Twisted's ``usage.Options``.

Every tapster command line (the runner, each plugin, the auth mixin) is declared
with :class:`Options`; every problem in a command line is a :class:`UsageError`
with a one-line message. Importing this package is cheap on purpose: it is on
the path of ``tapster --help``.
"""

from tapster.usage._errors import UsageError
from tapster.usage._options import Options
from tapster.usage.coerce import (
    choice,
    documented,
    existing_dir,
    existing_file,
    octal_mode,
    port,
    positive_int,
    secret,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.usage._completion import (
        SHELLS,
        bash_completion,
        completion_data,
        completion_script,
        fish_completion,
        zsh_completion,
    )

__all__ = [
    "SHELLS",
    "Options",
    "UsageError",
    "bash_completion",
    "choice",
    "completion_data",
    "completion_script",
    "documented",
    "existing_dir",
    "existing_file",
    "fish_completion",
    "octal_mode",
    "port",
    "positive_int",
    "secret",
    "zsh_completion",
]

_COMPLETION = {
    "SHELLS",
    "bash_completion",
    "completion_data",
    "completion_script",
    "fish_completion",
    "zsh_completion",
}


def __getattr__(name: str) -> object:
    # Shell completion is imported when first asked for: `tapster --help` needs none of it.
    if name not in _COMPLETION:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from tapster.usage import _completion

    value = getattr(_completion, name)
    globals()[name] = value
    return value
