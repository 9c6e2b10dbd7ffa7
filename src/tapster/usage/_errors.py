"""The one exception that every command-line problem becomes."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.usage._options import Options


class UsageError(Exception):
    """The command line is wrong; the message says what and where, on one line.

    ``options`` is the :class:`~tapster.usage.Options` instance that was parsing
    when the problem was found (for a subcommand, the subcommand's options), so a
    caller can point the user at the right ``--help``. It is filled in by
    ``parse_options`` when the raiser did not set it. ``unknown_command`` is the
    name as typed when the problem is a subcommand that does not exist (a caller
    may then suggest its own way), else ``None``.
    """

    options: Options | None

    def __init__(
        self, message: str, options: Options | None = None, *, unknown_command: str | None = None
    ) -> None:
        super().__init__(message)
        self.options = options
        self.unknown_command = unknown_command

    @property
    def message(self) -> str:
        """The one-line description of the problem."""
        return str(self.args[0]) if self.args else ""
