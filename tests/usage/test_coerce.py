"""The shipped coercers, alone and inside an Options class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.parametrize(
    ("coerce", "text", "value"),
    [
        (port, "0", 0),
        (port, "80", 80),
        (port, "65535", 65535),
        (port, " 8080 ", 8080),
        (positive_int, "1", 1),
        (positive_int, "+12", 12),
        (octal_mode, "644", 0o644),
        (octal_mode, "0644", 0o644),
        (octal_mode, "0o750", 0o750),
        (octal_mode, "7777", 0o7777),
        (octal_mode, "0", 0),
        (choice("a", "b"), "b", "b"),
    ],
)
def test_accepted(coerce: Any, text: str, value: object) -> None:
    assert coerce(text) == value


@pytest.mark.parametrize(
    ("coerce", "text", "reason"),
    [
        (port, "65536", "a port number is between 0 and 65535"),
        (port, "-1", "a port number is between 0 and 65535"),
        (port, "http", "expected a port number (0-65535)"),
        (port, "", "expected a port number (0-65535)"),
        (port, "8_0", "expected a port number (0-65535)"),
        (port, "\u0663", "expected a port number (0-65535)"),  # a non-ASCII digit
        (port, "1" * 5000, "a port number is between 0 and 65535"),
        (positive_int, "0", "expected a positive integer (1 or more)"),
        (positive_int, "1.5", "expected a positive integer"),
        (octal_mode, "8", "expected an octal file mode such as 0644"),
        (octal_mode, "", "expected an octal file mode such as 0644"),
        (octal_mode, "17777", "a file mode is at most 07777"),
        (choice("a", "b"), "c", "expected one of: a, b"),
    ],
)
def test_refused(coerce: Any, text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        coerce(text)
    assert str(caught.value) == reason


def test_paths(tmp_path: Path) -> None:
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    assert existing_file(str(afile)) == str(afile)
    assert existing_dir(str(tmp_path)) == str(tmp_path)
    for coerce, text, reason in [
        (existing_file, str(tmp_path / "missing"), "no such file"),
        (existing_file, str(tmp_path), "is a directory, expected a file"),
        (existing_file, "", "expected the path of a file"),
        (existing_file, "a\0b", "no such file"),
        (existing_dir, str(afile), "not a directory"),
        (existing_dir, str(tmp_path / "missing"), "no such directory"),
        (existing_dir, "", "expected the path of a directory"),
    ]:
        with pytest.raises(ValueError) as caught:
            coerce(text)
        assert str(caught.value) == reason


def test_every_coercer_documents_itself() -> None:
    for coerce in (port, positive_int, octal_mode, existing_file, existing_dir, choice("x")):
        assert isinstance(coerce.coerce_doc, str)  # type: ignore[attr-defined]
        assert coerce.coerce_doc.endswith(".")  # type: ignore[attr-defined]
    assert existing_file.completion == "file"  # type: ignore[attr-defined]
    assert existing_dir.completion == "dir"  # type: ignore[attr-defined]
    assert choice("x", "y").completion == ("x", "y")  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        choice()


class Server(Options):
    parameters = [
        ("port", "p", 8080, "Port.", port),
        ("umask", None, 0o22, "Umask.", octal_mode),
        ("config", "c", None, "Config file.", existing_file),
        ("root", None, ".", "Root.", existing_dir),
        ("workers", None, 1, "Workers.", positive_int),
        ("level", None, "info", "Level.", choice("debug", "info")),
    ]


def test_usage_errors_name_option_and_value() -> None:
    cases = [
        (["-p", "99999"], "option -p: invalid value '99999': a port number is between 0 and 65535"),
        (
            ["--umask=9"],
            "option --umask: invalid value '9': expected an octal file mode such as 0644",
        ),
        (
            ["--config", "/nonexistent/nope.cfg"],
            "option --config: invalid value '/nonexistent/nope.cfg': no such file",
        ),
        (["--root", "/dev/null"], "option --root: invalid value '/dev/null': not a directory"),
        (
            ["--workers", "0"],
            "option --workers: invalid value '0': expected a positive integer (1 or more)",
        ),
        (["--level", "x"], "option --level: invalid value 'x': expected one of: debug, info"),
    ]
    for argv, message in cases:
        with pytest.raises(UsageError) as caught:
            Server().parse_options(argv)
        assert str(caught.value) == message


def test_values_are_coerced_but_defaults_are_not() -> None:
    options = Server()
    options.parse_options(["--umask", "077", "--workers", "3"])
    assert options["umask"] == 0o77
    assert options["workers"] == 3
    assert options["port"] == 8080


def test_custom_coercer_with_empty_message_uses_coerce_doc() -> None:
    def even(text: str) -> int:
        number = int(text)
        if number % 2:
            raise ValueError
        return number

    even.coerce_doc = "An even number."  # type: ignore[attr-defined]

    class Even(Options):
        parameters = [("n", None, 0, "N.", even), ("f", None, 0.0, "F.", float)]

    with pytest.raises(UsageError, match=r"^option --n: invalid value '3': An even number\.$"):
        Even().parse_options(["--n", "3"])
    with pytest.raises(UsageError, match=r"^option --f: invalid value 'x': expected a number$"):
        Even().parse_options(["--f", "x"])
    assert "An even number." in Even().help_text(80)


def test_documented_without_a_sentence_gives_only_a_placeholder() -> None:
    from tapster.usage.coerce import documented

    @documented(None, completion="file", metavar="FILE")
    def path(text: str) -> str:
        return text

    class Paths(Options):
        parameters = [("out", None, None, "Where to write.", path)]

    assert not hasattr(path, "coerce_doc")
    assert "\n      --out=FILE  Where to write.\n" in Paths().help_text(80)


def test_the_runner_documents_its_own_coercers_not_the_shared_id_lookups() -> None:
    import tapster._ids
    import tapster.runner  # its options module is what would write them

    for lookup in (tapster._ids.user_id, tapster._ids.group_id):
        assert not hasattr(lookup, "coerce_doc") and not hasattr(lookup, "metavar")
