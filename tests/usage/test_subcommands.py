"""Subcommands: lazy factories, the default command, the parent link, post_options order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tapster.usage import Options, UsageError, port

EVENTS: list[str] = []


class Serve(Options):
    parameters = [("port", "p", 8080, "Port.", port)]
    flags = [("verbose", "v", "More output.")]

    def parse_args(self, *paths: str) -> None:
        self["paths"] = paths

    def post_options(self) -> None:
        EVENTS.append(f"serve post_options parent={self.parent is not None}")
        if self["port"] == 0 and self.parent is not None and self.parent["strict"]:
            raise UsageError("--port 0 is refused in strict mode")


class Nested(Options):
    subcommands = [("leaf", "l", Serve, "A leaf.")]

    def post_options(self) -> None:
        EVENTS.append("nested post_options")


class Top(Options):
    flags = [("strict", "s", "Refuse odd values."), ("verbose", "v", "Top-level verbosity.")]

    def __init__(self) -> None:
        super().__init__()
        self.made: list[str] = []

    def _factory(self, name: str, cls: type[Options]) -> Callable[[], Options]:
        def make() -> Options:
            self.made.append(name)
            return cls()

        return make

    @property
    def subcommands(self) -> Sequence[Sequence[Any]]:
        return [
            ("serve", "s", self._factory("serve", Serve), "Serve things.\nSecond line."),
            ("nested", None, self._factory("nested", Nested), "Nested commands."),
            ("broken", "b", self._factory("broken", _Broken), "Never chosen in tests."),
        ]

    def post_options(self) -> None:
        EVENTS.append(f"top post_options subcommand={self.subcommand}")


class _Broken(Options):
    def __init__(self) -> None:
        raise AssertionError("this factory must never be called")


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    EVENTS.clear()


def test_subcommand_gets_everything_after_its_name() -> None:
    top = Top()
    top.parse_options(["-v", "serve", "-v", "--port", "81", "a", "-s", "b"])
    assert top.subcommand == "serve"
    sub = top.sub_options
    assert isinstance(sub, Serve)
    assert sub.parent is top
    assert top["verbose"] is True
    assert top["strict"] is False  # "-s" after the name went to the subcommand's args
    assert sub["verbose"] is True
    assert sub["port"] == 81
    assert sub["paths"] == ("a", "-s", "b")


def test_only_the_chosen_factory_is_called() -> None:
    top = Top()
    top.parse_options(["serve"])
    assert top.made == ["serve"]
    top.help_text(80)  # listing the commands calls no factory either
    assert top.made == ["serve"]


def test_short_name_of_a_subcommand() -> None:
    top = Top()
    top.parse_options(["s", "-p", "1"])
    assert top.subcommand == "serve"  # the long name is recorded
    assert top.sub_options is not None
    assert top.sub_options["port"] == 1


def test_post_options_runs_child_first() -> None:
    Top().parse_options(["serve"])
    assert EVENTS == ["serve post_options parent=True", "top post_options subcommand=serve"]


def test_nested_subcommands_run_post_options_inside_out() -> None:
    top = Top()
    top.parse_options(["nested", "l", "-p", "2"])
    assert EVENTS == [
        "serve post_options parent=True",
        "nested post_options",
        "top post_options subcommand=nested",
    ]
    nested = top.sub_options
    assert nested is not None
    assert nested.subcommand == "leaf"
    assert nested.sub_options is not None
    assert nested.sub_options.parent is nested
    assert nested.sub_options.command_path().endswith(" nested leaf")


def test_child_post_options_can_read_the_parent() -> None:
    with pytest.raises(UsageError, match="refused in strict mode") as caught:
        Top().parse_options(["--strict", "serve", "-p", "0"])
    assert isinstance(caught.value.options, Serve)


def test_errors_inside_the_subcommand_name_its_options() -> None:
    with pytest.raises(UsageError) as caught:
        Top().parse_options(["serve", "--bogus"])
    assert str(caught.value) == "unknown option '--bogus'"
    assert isinstance(caught.value.options, Serve)


def test_unknown_command() -> None:
    with pytest.raises(UsageError) as caught:
        Top().parse_options(["nope"])
    assert str(caught.value) == "unknown command 'nope' (commands: serve, nested, broken)"
    assert isinstance(caught.value.options, Top)
    with pytest.raises(UsageError) as caught:
        Top().parse_options(["serv"])
    assert str(caught.value) == "unknown command 'serv'; did you mean serve?"


def test_no_command_given_leaves_subcommand_none() -> None:
    top = Top()
    top.parse_options([])
    assert top.subcommand is None
    assert top.sub_options is None
    assert EVENTS == ["top post_options subcommand=None"]


def test_default_subcommand() -> None:
    class WithDefault(Top):
        default_subcommand = "serve"

    top = WithDefault()
    top.parse_options(["-s"])
    assert top.subcommand == "serve"
    assert top.sub_options is not None
    assert top.sub_options["port"] == 8080
    assert top.made == ["serve"]
    # An explicit name still wins; an unknown one is still an error.
    top = WithDefault()
    top.parse_options(["nested"])
    assert top.subcommand == "nested"
    with pytest.raises(UsageError, match="unknown command"):
        WithDefault().parse_options(["-v", "x"])


def test_double_dash_before_the_command() -> None:
    top = Top()
    top.parse_options(["--", "serve"])
    assert top.subcommand == "serve"


def test_subcommands_as_a_plain_class_attribute() -> None:
    class Plain(Options):
        subcommands = [("run", None, Serve, "Run.")]

    plain = Plain()
    plain.parse_options(["run", "x"])
    assert plain.subcommand == "run"
    assert plain.sub_options is not None
    assert plain.sub_options["paths"] == ("x",)


def test_help_of_a_subcommand_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        Top().parse_options(["serve", "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "serve [options]" in out.splitlines()[0]
    assert "--port=PORT" in out
    assert "--strict" not in out
