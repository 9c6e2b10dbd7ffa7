"""--help and --version: layout checked against expected text, wrapping, synopsis."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tapster.usage import Options, UsageError, existing_dir, port, positive_int


@pytest.fixture(autouse=True)
def _program_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["/usr/bin/tapster"])


class Web(Options):
    long_description = """Serve the files of a directory over HTTP.

    Examples:

        tapster web --path /srv/www
        tapster web -p 8080
    """
    parameters = [
        ("port", "p", 8080, "The port number to listen on.", port),
        ("path", None, ".", "The directory to serve.", existing_dir),
        (
            "workers",
            "w",
            1,
            "How many worker tasks handle requests at the same time; more workers use"
            " more memory but serve slow clients better.",
            positive_int,
        ),
        ("index", None, "", "The index file name."),
        ("logfile", "l", None, "Where to log."),
    ]
    flags = [
        ("nodaemon", "n", "Stay in the foreground."),
        ("very-long-option-name-here", None, "A long one."),
    ]
    version = "1.0"

    def opt_auth(self, value: str) -> None:
        """Add a checker
        (repeatable)."""

    def opt_quiet(self) -> None:
        """Say less."""

    opt_q = opt_quiet


WEB_HELP_80 = """\
Usage: tapster [options]

Serve the files of a directory over HTTP.

Examples:

    tapster web --path /srv/www
    tapster web -p 8080

Options:
      --auth=AUTH        Add a checker (repeatable).
      --help             Display this help and exit.
      --index=INDEX      The index file name. [default: ""]
  -l, --logfile=LOGFILE  Where to log.
  -n, --nodaemon         Stay in the foreground.
      --path=DIR         The directory to serve. The path of an existing
                         directory. [default: .]
  -p, --port=PORT        The port number to listen on. A port number, 0-65535.
                         [default: 8080]
  -q, --quiet            Say less.
      --version          Display the version and exit.
      --very-long-option-name-here
                         A long one.
  -w, --workers=WORKERS  How many worker tasks handle requests at the same time;
                         more workers use more memory but serve slow clients
                         better. A positive integer. [default: 1]
"""


def test_help_layout_at_80_columns() -> None:
    assert Web().help_text(80) == WEB_HELP_80


def test_a_variable_hook_adds_each_options_name_in_the_environment() -> None:
    # The runner sets the hook (tapster._env_names); a plain Options shows no [env: ...].
    options = Web()
    options._tapster_variable = lambda o: None if o.key == "logfile" else "APP_" + o.key.upper()
    text = options.help_text(80)
    assert (
        "  -p, --port=PORT        The port number to listen on. A port number, 0-65535.\n"
        "                         [default: 8080] [env: APP_PORT]\n"
    ) in text
    assert "  -n, --nodaemon         Stay in the foreground. [env: APP_NODAEMON]\n" in text
    assert "  -l, --logfile=LOGFILE  Where to log.\n" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_columns_environment_sets_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert Web().help_text() == WEB_HELP_80
    monkeypatch.setenv("COLUMNS", "50")
    narrow = Web().help_text()
    assert narrow != WEB_HELP_80
    assert max(len(line) for line in narrow.splitlines()) <= 50
    assert "[default: 8080]" in narrow  # never split inside the default


@pytest.mark.parametrize("width", [40, 60, 100, 200])
def test_every_line_fits(width: int) -> None:
    text = Web().help_text(width)
    long_label = "      --very-long-option-name-here"
    for line in text.splitlines():
        assert len(line) <= width or line == long_label


def test_help_option_prints_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="--bogus-before-help"):
        Web().parse_options(["--bogus-before-help", "--help"])
    with pytest.raises(SystemExit) as caught:
        Web().parse_options(["--port", "1", "--help", "--bogus-after-help"])
    assert caught.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("Usage: tapster [options]\n")
    assert "--port=PORT" in out
    assert err == ""


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        Web().parse_options(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == "tapster 1.0\n"


def test_no_version_option_without_a_version() -> None:
    class NoVersion(Options):
        pass

    with pytest.raises(UsageError, match="unknown option '--version'"):
        NoVersion().parse_options(["--version"])
    assert "--version" not in NoVersion().help_text(80)


class Top(Options):
    long_description = "Run network services from plugins."
    flags = [("nodaemon", "n", "Stay in the foreground.")]
    subcommands = [
        ("web", "w", Web, "Serve files over HTTP.\nThis second line is not shown."),
        (
            "portforward",
            None,
            Web,
            "Forward a TCP port to another host and port, copying bytes both ways"
            " until either side closes.",
        ),
        ("bare", None, Options),
    ]
    default_subcommand = "web"


TOP_HELP_60 = """\
Usage: tapster [options] [command [options]]

Run network services from plugins.

Options:
      --help      Display this help and exit.
  -n, --nodaemon  Stay in the foreground.

Commands (default: web):
  web (w)      Serve files over HTTP.
  portforward  Forward a TCP port to another host and port,
               copying bytes both ways until either side
               closes.
  bare
"""


def test_commands_section() -> None:
    assert Top().help_text(60) == TOP_HELP_60


def test_subcommand_synopsis_includes_the_parent() -> None:
    top = Top()
    top.parse_options(["-n", "w"])
    assert top.sub_options is not None
    assert top.sub_options.get_synopsis() == "Usage: tapster [options] web [options]"
    assert top.sub_options.command_path() == "tapster web"


def test_declared_synopsis_wins() -> None:
    class Declared(Options):
        synopsis = "Usage: tapster [options] thing FILE"

    class Bare(Options):
        synopsis = "mytool [-x] FILE"

    assert Declared().get_synopsis() == "Usage: tapster [options] thing FILE"
    assert Bare().get_synopsis() == "Usage: mytool [-x] FILE"


def test_synopsis_shows_positional_arguments() -> None:
    class One(Options):
        def parse_args(self, source: str, target: str = "-") -> None:
            pass

    class Many(Options):
        def parse_args(self, *files: str) -> None:
            pass

    class Keyword(Options):  # *files comes after the keyword-only names in the code object
        def parse_args(self, first: str, *files: str, strict: bool = False) -> None:
            pass

    assert One().get_synopsis() == "Usage: tapster [options] SOURCE [TARGET]"
    assert Many().get_synopsis() == "Usage: tapster [options] [FILES...]"
    assert Keyword().get_synopsis() == "Usage: tapster [options] FIRST [FILES...]"
    Keyword().parse_options(["a", "b", "c"])  # any number after the first


def test_long_synopsis_wraps_under_itself() -> None:
    class Long(Options):
        synopsis = "tapster " + " ".join(f"[--option-{i}]" for i in range(12))

    lines = Long().help_text(60).splitlines()
    assert lines[0].startswith("Usage: tapster [--option-0]")
    assert lines[1].startswith("       [--option-")
    assert all(len(line) <= 60 for line in lines)


def test_short_only_handler_with_value() -> None:
    class Short(Options):
        def opt_x(self, value: str) -> None:
            """Set x."""

    assert "\n  -x X        Set x.\n" in Short().help_text(80)


def test_python_dash_m_program_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["/src/tapster/__main__.py"])
    assert Options().get_synopsis() == "Usage: tapster [options]"


def test_help_in_a_real_process_goes_to_stdout() -> None:
    code = textwrap.dedent(
        """
        from tapster.usage import Options
        class O(Options):
            parameters = [("port", "p", 1235, "The port number to listen on.")]
        O().parse_options()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert "  -p, --port=PORT  The port number to listen on. [default: 1235]" in result.stdout


def test_version_synonyms_follow_version(capsys: pytest.CaptureFixture[str]) -> None:
    class WithV(Options):
        opt_V = Options.opt_version  # noqa: N815 - an upper-case short form

    class Versioned(WithV):
        version = "2.0"

    with pytest.raises(UsageError, match="unknown option '-V'"):
        WithV().parse_options(["-V"])
    with pytest.raises(SystemExit):
        Versioned().parse_options(["-V"])
    assert capsys.readouterr().out == "tapster 2.0\n"
    assert "  -V, --version  Display the version and exit." in Versioned().help_text(80)


def test_subcommand_synopsis_forms() -> None:
    class Relative(Options):
        synopsis = "[options] FILE"

    class Absolute(Options):
        synopsis = "tapster [options] abs [abs options] FILE"

    class UsagePrefixed(Options):
        synopsis = "Usage: anything goes"

    class Root(Options):
        synopsis = "tapster [options] COMMAND [COMMAND options]"
        subcommands = [
            ("rel", None, Relative, ""),
            ("abs", None, Absolute, ""),
            ("pre", None, UsagePrefixed, ""),
            ("gen", None, Options, ""),
        ]

    expected = {
        "rel": "Usage: tapster [options] rel [options] FILE",
        "abs": "Usage: tapster [options] abs [abs options] FILE",
        "pre": "Usage: anything goes",
        "gen": "Usage: tapster [options] gen [options]",
    }
    for name, synopsis in expected.items():
        root = Root()
        root.parse_options([name])
        assert root.sub_options is not None
        assert root.sub_options.get_synopsis() == synopsis
    assert Root().get_synopsis() == "Usage: tapster [options] COMMAND [COMMAND options]"
    assert Relative().get_synopsis() == "Usage: [options] FILE"  # no parent: as declared


def test_value_placeholders() -> None:
    def seconds(text: str) -> float:
        return float(text)

    seconds.metavar = "SECONDS"  # type: ignore[attr-defined]

    class Placeholders(Options):
        parameters = [
            ("shutdown_timeout", None, 30.0, "Grace.", seconds),
            ("log-rotate-size", None, None, "Size."),
            ("port", "p", 0, "", port),
            ("root", None, ".", "", existing_dir),
        ]

        def opt_help_auth_type(self, value: str) -> None:
            """Explain one auth type."""

    text = Placeholders().help_text(100)
    for label in (
        "--shutdown-timeout=SECONDS",
        "--log-rotate-size=SIZE",
        "-p, --port=PORT",
        "--root=DIR",
        "--help-auth-type=TYPE",
    ):
        assert f" {label} " in text
