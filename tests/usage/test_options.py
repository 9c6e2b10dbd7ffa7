"""Parsing: parameters, flags, handlers, coercion, inheritance and the mapping."""

from __future__ import annotations

from typing import Any

import pytest

from tapster.usage import Options, UsageError, port


class Basic(Options):
    parameters = [
        ("port", "p", 1235, "The port number to listen on.", port),
        ("host", "h", "localhost", "The host to bind."),
        ("name", None, None, "A name."),
        ("count", "c", 1, "How many.", int),
    ]
    flags = [("nodaemon", "n", "Stay in the foreground."), ("bold", "b", "Be bold.")]


def parse(cls: type[Options], *argv: str) -> Any:
    options = cls()
    options.parse_options(list(argv))
    return options


def test_defaults() -> None:
    options = parse(Basic)
    assert dict(options) == {
        "port": 1235,
        "host": "localhost",
        "name": None,
        "count": 1,
        "nodaemon": False,
        "bold": False,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--port=80"],
        ["--port", "80"],
        ["-p80"],
        ["-p", "80"],
        ["--port", "1", "--port", "80"],
    ],
)
def test_parameter_spellings(argv: list[str]) -> None:
    assert parse(Basic, *argv)["port"] == 80


def test_h_is_not_reserved_for_help() -> None:
    assert parse(Basic, "-h", "example.org")["host"] == "example.org"


def test_flags_and_bundles() -> None:
    options = parse(Basic, "-nb")
    assert options["nodaemon"] is True
    assert options["bold"] is True
    options = parse(Basic, "-nbp8080", "--nodaemon", "--nodaemon")
    assert (options["nodaemon"], options["bold"], options["port"]) == (True, True, 8080)


def test_value_may_start_with_a_dash() -> None:
    assert parse(Basic, "--count", "-5")["count"] == -5
    assert parse(Basic, "-c", "-5")["count"] == -5


def test_double_dash_ends_options() -> None:
    class Args(Basic):
        def parse_args(self, *args: str) -> None:
            self["args"] = args

    options = parse(Args, "-n", "--", "--port", "-b")
    assert options["args"] == ("--port", "-b")
    assert options["port"] == 1235
    assert options["nodaemon"] is True


def test_options_stop_at_first_argument() -> None:
    class Args(Basic):
        def parse_args(self, *args: str) -> None:
            self["args"] = args

    options = parse(Args, "file", "-n")
    assert options["args"] == ("file", "-n")
    assert options["nodaemon"] is False
    assert parse(Args, "-")["args"] == ("-",)


def test_underscore_spelling_of_a_dashed_name() -> None:
    class Dashed(Options):
        parameters = [("auth_type", None, "x")]

    assert parse(Dashed, "--auth-type", "y")["auth_type"] == "y"
    assert parse(Dashed, "--auth_type", "z")["auth_type"] == "z"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port=abc"], "option --port: invalid value 'abc': expected a port number (0-65535)"),
        (["-p", "70000"], "option -p: invalid value '70000': a port number is between 0 and 65535"),
        (["--count", "x"], "option --count: invalid value 'x': expected an integer"),
        (["--port"], "option --port needs a value"),
        (["-p"], "option -p needs a value"),
        (["--nodaemon=yes"], "option --nodaemon takes no value (got '--nodaemon=yes')"),
        (["--bogus"], "unknown option '--bogus'"),
        (["--por", "1"], "unknown option '--por'; did you mean --port?"),
        (["--prot", "1"], "unknown option '--prot'; did you mean --port?"),
        (["-z"], "unknown option '-z'"),
        (["-nz"], "unknown option '-z' in '-nz'"),
        (["--"], None),
        (["extra"], "unexpected argument 'extra' (this command takes no arguments)"),
        (["--", "-n"], "unexpected argument '-n' (this command takes no arguments)"),
        (["--=1"], "unknown option '--'"),
        (["--x\ny"], "unknown option '--x\\ny'"),
    ],
)
def test_errors_name_the_option(argv: list[str], message: str | None) -> None:
    if message is None:
        parse(Basic, *argv)
        return
    with pytest.raises(UsageError) as caught:
        parse(Basic, *argv)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value.options, Basic)


def test_long_prefixes_are_refused() -> None:
    with pytest.raises(UsageError, match="did you mean --nodaemon"):
        parse(Basic, "--nod")


def test_single_dash_long_option_hint() -> None:
    class Long(Options):
        flags = [("verbose", None, "x")]

    with pytest.raises(UsageError, match="long options take two dashes: --verbose"):
        parse(Long, "-verbose")


class Handlers(Options):
    flags = [("debug", "d", "Debug mode.")]

    def __init__(self) -> None:
        super().__init__()
        self["auth"] = []
        self.calls: list[str] = []

    def opt_auth(self, value: str) -> None:
        """Add an authentication source. May be given many times."""
        self["auth"].append(value)

    def opt_quiet(self) -> None:
        """Say less."""
        self.calls.append("quiet")

    opt_q = opt_quiet
    opt_silent = opt_quiet

    def opt_level(self, value: str) -> None:
        """Set the level."""
        if value not in ("a", "b"):
            raise ValueError("level must be a or b")
        self["level"] = value

    def opt_debug(self) -> None:
        self.calls.append("debug")

    def opt_x(self, value: str) -> None:
        """Short only."""
        self["x"] = value


def test_handlers_with_and_without_value() -> None:
    options = parse(Handlers, "--auth", "one", "--auth=two", "-q", "--silent", "--quiet", "-xV")
    assert options["auth"] == ["one", "two"]
    assert options.calls == ["quiet", "quiet", "quiet"]
    assert options["x"] == "V"
    assert "quiet" not in options  # a handler without a row stores nothing itself


def test_handler_replaces_row_storage_but_keeps_short_and_doc() -> None:
    options = parse(Handlers, "-d", "--debug")
    assert options.calls == ["debug", "debug"]
    assert options["debug"] is False  # the row's default; the handler did not store
    assert "Debug mode." in options.help_text(80)


def test_handler_value_error_becomes_usage_error() -> None:
    with pytest.raises(UsageError, match=r"^option --level: level must be a or b$"):
        parse(Handlers, "--level", "c")
    assert parse(Handlers, "--level", "b")["level"] == "b"


def test_handler_bundled_with_value() -> None:
    options = parse(Handlers, "-qxVALUE")
    assert options.calls == ["quiet"]
    assert options["x"] == "VALUE"


def test_mapping_behaviour() -> None:
    options = parse(Basic, "-p", "1")
    assert options["port"] == 1
    options["port"] = 2
    options["new"] = "v"
    assert options["port"] == 2
    assert options.get("missing", 7) == 7
    assert "new" in options
    del options["new"]
    assert "new" not in options
    assert len(options) == 6
    assert sorted(options) == sorted(options.keys())
    with pytest.raises(KeyError):
        options["missing"]
    assert "Basic" in repr(options)


class Base(Options):
    parameters = [("port", "p", 1, "Base port.", int)]
    flags = [("base-flag", None, "From the base.")]


class Mixin:
    """Not an Options subclass: adds options through the MRO."""

    parameters = [("mixed", "m", "m-default", "From the mixin.")]

    def __init__(self) -> None:
        super().__init__()
        self.mixin_ran = True

    def opt_extra(self, value: str) -> None:
        """From the mixin too."""
        self["extra"] = value  # type: ignore[index]


class Derived(Base, Mixin):
    parameters = [("port", "p", 2, "Derived port.", int)]
    flags = [("own", "o", "Own flag.")]


def test_declarations_accumulate_over_the_mro() -> None:
    options = parse(Derived, "-m", "x", "--extra", "y", "--base-flag", "-o")
    assert options["port"] == 2  # the subclass's row replaces the base's
    assert options["mixed"] == "x"
    assert options["extra"] == "y"
    assert options["base-flag"] is True
    assert options["own"] is True
    assert options.mixin_ran is True  # __init__ is cooperative
    text = options.help_text(80)
    assert "Derived port." in text
    assert "Base port." not in text


def test_subclass_can_switch_off_a_handler() -> None:
    class NoExtra(Derived):
        opt_extra = None  # type: ignore[assignment]

    with pytest.raises(UsageError, match="unknown option '--extra'"):
        parse(NoExtra, "--extra", "1")


def test_each_instance_has_its_own_values() -> None:
    one, two = Basic(), Basic()
    one["port"] = 5
    assert two["port"] == 1235


def test_conflicting_short_forms_are_a_declaration_error() -> None:
    class Clash(Options):
        flags = [("alpha", "a", ""), ("also", "a", "")]

    with pytest.raises(TypeError, match="-a is declared for both"):
        Clash()


def test_bad_rows_are_declaration_errors() -> None:
    class BadRow(Options):
        parameters = [("x", "long", None)]

    class BadHandler(Options):
        def opt_two(self, a: str, b: str) -> None:
            pass

    class Mismatch(Options):
        flags = [("thing", None, "")]

        def opt_thing(self, value: str) -> None:
            pass

    for cls in (BadRow, BadHandler, Mismatch):
        with pytest.raises(TypeError):
            cls()


class Positional(Options):
    def parse_args(self, source: str, target: str = "out") -> None:
        self["source"] = source
        self["target"] = target


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "missing argument SOURCE (expected 1 to 2 arguments, got 0)"),
        (["a", "b", "c"], "unexpected argument 'c' (expected 1 to 2 arguments, got 3)"),
    ],
)
def test_positional_count_is_checked(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(Positional, *argv)
    assert str(caught.value) == message


def test_positional_arguments() -> None:
    assert parse(Positional, "a")["target"] == "out"
    assert parse(Positional, "a", "b")["target"] == "b"


def test_post_options_sees_everything() -> None:
    class Check(Basic):
        def post_options(self) -> None:
            if self["nodaemon"] and self["port"] == 0:
                raise UsageError("--nodaemon cannot be used with port 0")

    with pytest.raises(UsageError, match="cannot be used"):
        parse(Check, "-n", "-p", "0")
    parse(Check, "-n")


def test_default_argv_is_sys_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["prog", "-p", "99"])
    options = Basic()
    options.parse_options()
    assert options["port"] == 99


def test_values_may_be_set_before_super_init() -> None:
    class Early(Basic):
        def __init__(self) -> None:
            self["early"] = True
            super().__init__()

    class NoSuper(Basic):
        def __init__(self) -> None:
            self["early"] = True

    for cls in (Early, NoSuper):
        options = parse(cls, "-p", "3")
        assert options["early"] is True
        assert options["port"] == 3
        assert options.subcommand is None


def test_repr_shows_names_not_values() -> None:
    class Secret(Options):
        parameters = [("password", None, None, "A password.")]

    options = parse(Secret, "--password", "hunter2")
    assert "hunter2" not in repr(options)
    assert "password" in repr(options)


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(UsageError) as caught:
        parse(Basic, "--port", "9" * 500)
    assert len(str(caught.value)) < 300
    assert "'999" in str(caught.value)
    assert "9" * 300 not in str(caught.value)


@pytest.mark.parametrize(
    ("twisted", "tapster"),
    [
        ("optParameters", "parameters"),
        ("optFlags", "flags"),
        ("subCommands", "subcommands"),
        ("defaultSubCommand", "default_subcommand"),
        ("longdesc", "long_description"),
        ("parseArgs", "parse_args"),
        ("postOptions", "post_options"),
    ],
)
def test_twisted_spellings_are_refused_with_the_tapster_name(twisted: str, tapster: str) -> None:
    with pytest.raises(TypeError) as raised:
        type("Ported", (Options,), {twisted: []})
    assert str(raised.value) == (
        f"Ported.{twisted} is Twisted's spelling, which tapster ignores: name it {tapster}"
    )
    # Code written for both (the tapster name defined too) is left alone.
    type("Both", (Options,), {twisted: [], tapster: []})
