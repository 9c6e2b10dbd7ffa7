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


# -- round trip: declare random options, spell random values every legal way -----------

names = st.from_regex(r"[a-z][a-z0-9]{1,8}(-[a-z0-9]{1,5})?", fullmatch=True)
letters = st.sampled_from("abcdefgijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=10
)


@st.composite
def declarations_and_command_lines(draw: st.DrawFn) -> tuple[type[Options], list[str], dict]:
    long_names = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    long_names = [n for n in long_names if n not in ("help", "version")]
    shorts = draw(
        st.lists(letters, min_size=len(long_names), max_size=len(long_names), unique=True)
    )
    kinds = draw(st.lists(st.booleans(), min_size=len(long_names), max_size=len(long_names)))
    parameters = []
    flags = []
    for name, short, is_parameter in zip(long_names, shorts, kinds, strict=True):
        short_or_none = short if draw(st.booleans()) else None
        if is_parameter:
            parameters.append((name, short_or_none, None, "doc"))
        else:
            flags.append((name, short_or_none, "doc"))
    cls = type("Generated", (Options,), {"parameters": parameters, "flags": flags})

    argv: list[str] = []
    expected: dict[str, object] = {}
    for _ in range(draw(st.integers(0, 8))):
        if parameters and draw(st.booleans()):
            name, short, _default, _doc = draw(st.sampled_from(parameters))
            value = draw(values)
            forms = [[f"--{name}={value}"], [f"--{name}", value]]
            if short:
                forms.append([f"-{short}", value])
                if value:
                    forms.append([f"-{short}{value}"])
            argv += draw(st.sampled_from(forms))
            expected[name] = value
        elif flags:
            name, short, _doc = draw(st.sampled_from(flags))
            argv.append(f"-{short}" if short and draw(st.booleans()) else f"--{name}")
            expected[name] = True
    return cls, argv, expected


@settings(max_examples=300, deadline=None)
@given(declarations_and_command_lines())
def test_every_spelling_round_trips(case: tuple[type[Options], list[str], dict]) -> None:
    cls, argv, expected = case
    options = cls()
    options.parse_options(argv)
    for name, value in expected.items():
        assert options[name] == value
    for name, value in options.items():
        if name not in expected:
            assert value in (None, False)
