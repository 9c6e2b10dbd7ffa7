"""The ``tapster`` command: run a service from a plugin or a ``.tac`` file.

``command`` is the ``tapster`` program (its launcher and ``python -m tapster``):
``main``, then exit. Importing this package loads only the options parser, so
that ``tapster --help`` stays fast (see docs/runner.md for the start-up order,
exit statuses and signals).
"""

from tapster.runner._main import command, main
from tapster.runner._options import RunnerOptions
from tapster.runner._status import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

TYPE_CHECKING = False  # typing itself costs the help path a few ms
if TYPE_CHECKING:
    from tapster.runner._settings import RunSettings

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "RunSettings",
    "RunnerOptions",
    "command",
    "main",
]


def __getattr__(name: str) -> object:
    # RunSettings is only needed on the run path: keep it off the --help path.
    if name == "RunSettings":
        from tapster.runner._settings import RunSettings

        return RunSettings
    raise AttributeError(f"module 'tapster.runner' has no attribute {name!r}")
