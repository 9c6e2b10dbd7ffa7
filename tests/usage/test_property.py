"""Any argument list either parses or raises UsageError; nothing else escapes."""

from __future__ import annotations

import contextlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from tapster.usage import (
    Options,
    UsageError,
    choice,
    existing_dir,
    existing_file,
    octal_mode,
    port,
    positive_int,
)


class Child(Options):
    parameters = [
        ("root", "r", ".", "Root.", existing_dir),
        ("mode", "m", "a", "", choice("a", "b")),
    ]
    flags = [("force", "f", "Force.")]

    def parse_args(self, first: str, *rest: str) -> None:
        self["args"] = (first, *rest)

    def post_options(self) -> None:
        if self["force"] and self["mode"] == "b":
            raise UsageError("--force cannot be combined with --mode b")


class Leaf(Options):
    def parse_args(self, one: str, two: str = "x") -> None:
        self["one"], self["two"] = one, two


class Rich(Options):
    version = "9.9"
    parameters = [
        ("port", "p", 1235, "Port.", port),
        ("umask", "u", None, "Umask.", octal_mode),
        ("config", "c", None, "Config.", existing_file),
        ("workers", "w", 1, "Workers.", positive_int),
        ("ratio", None, 1.0, "Ratio.", float),
        ("count", None, 0, "Count.", int),
        ("name", "N", None, "Name."),
        ("dashed_name", None, None, "Dashed."),
    ]
    flags = [("nodaemon", "n", "Foreground."), ("bold", "b", "Bold."), ("quiet", "q", "")]

    def __init__(self) -> None:
        super().__init__()
        self["auth"] = []

    def opt_auth(self, value: str) -> None:
        """Repeatable; refuses values without a colon."""
        if ":" not in value:
            raise ValueError("expected TYPE:ARGS")
        self["auth"].append(value)

    def opt_verbose(self) -> None:
        """Louder."""
        self["level"] = self.get("level", 0) + 1

    opt_v = opt_verbose
    opt_loud = opt_verbose

    subcommands = [("child", "C", Child, "A child."), ("leaf", None, Leaf, "A leaf.")]


WORDS = [
    "--port",
    "-p",
    "--umask",
    "-u",
    "--config",
    "-c",
    "--workers",
    "-w",
    "--ratio",
    "--count",
    "--name",
    "-N",
    "--dashed-name",
    "--dashed_name",
    "--nodaemon",
    "-n",
    "-nb",
    "-nbq",
    "-nbp",
    "-qp80",
    "--bold",
    "-b",
    "--quiet",
    "-q",
    "--auth",
    "--auth=a:b",
    "--verbose",
    "-v",
    "-vv",
    "--loud",
    "--",
    "-",
    "child",
    "C",
    "leaf",
    "--root",
    "-r",
    "--mode",
    "-m",
    "--force",
    "-f",
    "-fm",
    "80",
    "0",
    "-1",
    "65536",
    "0644",
    "9",
    "/",
    "/etc/hostname",
    "/nonexistent",
    "a:b",
    "b",
    "=",
    "--=",
    "--port=",
    "--nodaemon=1",
    "--po",
    "-x",
    "--help-me",
    "\0",
    "\n",
    "\udcff",
    "é",
    "1e9",
    "nan",
]
arguments = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), max_size=12)


@settings(max_examples=400, deadline=None)
@given(arguments)
def test_parse_or_usage_error(argv: list[str]) -> None:
    options = Rich()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            options.parse_options(argv)
    except UsageError as error:
        message = str(error)
        assert message
        assert "\n" not in message
        assert error.options is not None
    except SystemExit as exit_:  # --help or --version, somewhere in the chain
        assert exit_.code == 0
        printed = out.getvalue()
        assert printed.startswith("Usage: ") or printed.endswith(" 9.9\n")
    else:
        assert isinstance(options["port"], int)
        assert options["nodaemon"] in (True, False)
        if options.subcommand is not None:
            assert options.sub_options is not None
            assert options.sub_options.parent is options


@settings(max_examples=150, deadline=None)
@given(arguments)
def test_help_never_breaks(argv: list[str]) -> None:
    options = Rich()
    with contextlib.suppress(UsageError, SystemExit), contextlib.redirect_stdout(io.StringIO()):
        options.parse_options(argv)
    text = options.help_text(60)
    assert text.startswith("Usage: ")
    if options.sub_options is not None:
        assert options.sub_options.help_text(60).startswith("Usage: ")
