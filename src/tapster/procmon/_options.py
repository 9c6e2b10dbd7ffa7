"""The command line of ``tapster procmon``."""

from __future__ import annotations

import os
import shlex

from tapster.usage import Options, UsageError


def _seconds(text: str) -> float:
    """A number of seconds, zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 2.5") from None
    if not 0 <= value < float("inf"):
        raise ValueError("expected a number of seconds, zero or more")
    return value


_seconds.coerce_doc = "Seconds, zero or more."  # type: ignore[attr-defined]


class ProcmonOptions(Options):
    """Options of ``tapster procmon`` (those of ``twistd procmon``, plus ``--command``)."""

    synopsis = "tapster [options] procmon [procmon options] [COMMAND [ARGS...]]"
    long_description = (
        "Run COMMAND [ARGS...] and keep it running: restart it when it exits, waiting "
        "longer after each quick failure, and log its output line by line. Name more "
        "commands with --command NAME=COMMAND_LINE (repeatable). Put -- before a command "
        "whose arguments start with a dash."
    )
    parameters = [
        (
            "threshold",
            "t",
            1.0,
            "Seconds a process must run to count as stable; after a stable run it is "
            "restarted at once and its delay goes back to the minimum.",
            _seconds,
        ),
        (
            "killtime",
            "k",
            5.0,
            "Seconds between SIGTERM and SIGKILL when stopping a process.",
            _seconds,
        ),
        (
            "minrestartdelay",
            "m",
            1.0,
            "Seconds to wait before the first restart after a quick exit.",
            _seconds,
        ),
        (
            "maxrestartdelay",
            "M",
            3600.0,
            "The most seconds to wait between restarts (the delay doubles up to this).",
            _seconds,
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self["commands"] = {}

    def opt_command(self, value: str) -> None:
        """NAME=COMMAND_LINE: also run this command under NAME (shell-style quoting; repeatable)."""
        name, equals, line = value.partition("=")
        name = name.strip()
        if not equals or not name:
            raise UsageError(
                f"--command {value!r}: expected NAME=COMMAND_LINE, "
                "e.g. --command 'web=python -m http.server'"
            )
        try:
            args = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"--command {value!r}: {exc}") from None
        if not args:
            raise UsageError(f"--command {value!r}: the command line after '=' is empty")
        self._add(name, args, f"--command {value!r}")

    def parse_args(self, *args: str) -> None:
        """COMMAND [ARGS...]: the command to run, named after its program."""
        if args:
            self._add(os.path.basename(args[0]) or args[0], list(args), repr(args[0]))

    def _add(self, name: str, args: list[str], where: str) -> None:
        commands: dict[str, list[str]] = self["commands"]
        if name in commands:
            raise UsageError(
                f"{where}: there is already a command named {name!r}; "
                "give each one its own name with --command NAME=..."
            )
        commands[name] = args

    def post_options(self) -> None:
        """Check that there is something to run and that the delays make sense."""
        if not self["commands"]:
            raise UsageError(
                "no command to run: give COMMAND [ARGS...] or --command NAME=COMMAND_LINE"
            )
        if self["minrestartdelay"] > self["maxrestartdelay"]:
            raise UsageError(
                f"--minrestartdelay ({self['minrestartdelay']:g}) is larger than "
                f"--maxrestartdelay ({self['maxrestartdelay']:g})"
            )
