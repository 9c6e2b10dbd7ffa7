"""Settings from TAPSTER_* variables and TOML files, checked through the real ``tapster``.

Every source and precedence level (command line > environment > file > default) for a
runner option, a built-in plugin's option (``web``) and a third-party drop-in plugin's
option (``greet-er``, whose module knows nothing of config); lists and flags from each
source; each error message; ``--print-config``.
"""

from __future__ import annotations

import subprocess
import textwrap
import tomllib
import urllib.request
from pathlib import Path

import pytest
from support import free_port, run_tapster, wait_for_line


def settings(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> dict[str, tuple[str, str]]:
    """``tapster --print-config ARGS``: ``{"[table] key": (value, origin)}``."""
    result = run_tapster(["--print-config", *args], cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    tomllib.loads(result.stdout)  # the output is itself a config file
    found = {}
    table = ""
    for line in result.stdout.splitlines():
        if line.startswith("["):
            table = line + " "
        elif " = " in line and not line.startswith("#"):
            setting, _, origin = line.partition("# ")
            key, _, value = setting.partition(" = ")
            found[table + key.strip()] = (value.strip(), origin.strip())
    return found


def write(folder: Path, text: str, name: str = "tapster.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def fails(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """The one error line of a usage error (status 2)."""
    result = run_tapster(args, cwd=cwd, env=env)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()[0]


# -- precedence, each level, three kinds of option --------------------------------------------


@pytest.mark.parametrize(
    ("table", "key", "variable", "option", "values"),
    [
        (
            None,
            "shutdown-timeout",
            "TAPSTER_SHUTDOWN_TIMEOUT",
            "--shutdown-timeout",
            ("30.0", "7", "8", "9"),
        ),
        ("web", "max-body", "TAPSTER_WEB_MAX_BODY", "--max-body", ("10485760", "1K", "2K", "3K")),
        (
            "greet-er",
            "greeting",
            "TAPSTER_GREET_ER_GREETING",
            "--greeting",
            ('"hello"', "hi", "hey", "yo"),
        ),
    ],
)
def test_each_level_beats_the_one_below(
    app: Path, table: str | None, key: str, variable: str, option: str, values: tuple[str, ...]
) -> None:
    default, in_file, in_env, on_line = values
    sub = [table] if table else ["web"]
    shown = f"[{table}] {key}" if table else key
    header = f"[{table}]\n" if table else ""

    assert settings(sub, app)[shown] == (default, "default")
    write(app, f'{header}{key} = "{in_file}"\n')
    assert settings(sub, app)[shown] == (f'"{in_file}"', f"tapster.toml line {2 if table else 1}")
    env = {variable: in_env}
    assert settings(sub, app, env)[shown] == (f'"{in_env}"', f"environment {variable}")
    args = [*sub[:0], option, on_line, *sub] if not table else [*sub, option, on_line]
    assert settings(args, app, env)[shown] == (f'"{on_line}"', "command line")


def test_a_bare_tapster_runs_the_subcommand_the_file_names(app: Path, tapster_proc) -> None:
    port = free_port()
    write(
        app,
        f"""
        subcommand = "greet-er"
        [greet-er]
        port = {port}
        greeting = "from the file"
        name = ["Ann", "Bob"]
        shout = true
        """,
    )
    proc = tapster_proc.start(cwd=app)
    assert wait_for_line(proc, port) == "FROM THE FILE ANN BOB"


def test_a_third_party_plugin_configured_by_the_environment_only(app: Path, tapster_proc) -> None:
    port = free_port()
    env = {
        "TAPSTER_GREET_ER_PORT": str(port),
        "TAPSTER_GREET_ER_NAME": '["Cy", "Di"]',
        "TAPSTER_GREET_ER_SHOUT": "yes",
        "TAPSTER_WEB_NO_SUCH": "1",  # another subcommand's variables are not this run's business
    }
    proc = tapster_proc.start("greet-er", cwd=app, env=env)
    assert wait_for_line(proc, port) == "HELLO CY DI"


def test_web_configured_by_the_environment_and_the_runner_by_the_file(
    app: Path, tapster_proc
) -> None:
    port = free_port()
    write(app, 'log-format = "json"\n')
    env = {"TAPSTER_WEB_LISTEN": f"tcp:{port}:interface=127.0.0.1", "TAPSTER_WEB_PATH": "site"}
    proc = tapster_proc.start("web", cwd=app, env=env)
    deadline = 15
    import time

    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                assert response.read() == b"configured\n"
                break
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < end
            time.sleep(0.05)
    proc.terminate()
    _, err = proc.communicate(timeout=15)
    assert err.splitlines()[0].startswith("{"), err  # --log-format json, from the file


# -- lists and flags ------------------------------------------------------------------------


def test_lists_from_each_source_replace_the_lower_ones(app: Path) -> None:
    write(app, '[greet-er]\nname = ["Ann", "Bob"]\n')
    assert settings(["greet-er"], app)["[greet-er] name"][0] == '["Ann", "Bob"]'
    env = {"TAPSTER_GREET_ER_NAME": '["Cy"]'}
    assert settings(["greet-er"], app, env)["[greet-er] name"] == (
        '["Cy"]',
        "environment TAPSTER_GREET_ER_NAME",
    )
    env = {"TAPSTER_GREET_ER_NAME": "Di"}  # one value needs no brackets
    assert settings(["greet-er"], app, env)["[greet-er] name"][0] == '["Di"]'
    line = settings(["greet-er", "--name", "Ed", "--name", "Flo"], app, env)["[greet-er] name"]
    assert line == ('["Ed", "Flo"]', "command line")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("1", "true"),
        ("yes", "true"),
        ("TRUE", "true"),
        ("0", "false"),
        ("no", "false"),
        ("false", "false"),
    ],
)
def test_flags_from_the_environment(app: Path, word: str, expected: str) -> None:
    write(app, "[greet-er]\nshout = true\n")  # the environment wins, also to switch it off
    env = {"TAPSTER_GREET_ER_SHOUT": word, "TAPSTER_DAEMON": word}
    found = settings(["greet-er"], app, env)
    assert found["[greet-er] shout"] == (expected, "environment TAPSTER_GREET_ER_SHOUT")
    assert found["daemon"] == (expected, "environment TAPSTER_DAEMON")


def test_flags_from_the_file(app: Path) -> None:
    write(
        app, "syslog = true\n[greet-er]\nshout = false\n[web]\nno-gzip = true\naccess-log = false\n"
    )
    found = settings(["greet-er"], app)
    assert found["syslog"] == ("true", "tapster.toml line 1")
    assert found["[greet-er] shout"] == ("false", "tapster.toml line 3")
    found = settings(["web"], app)
    assert found["[web] no-gzip"] == ("true", "tapster.toml line 5")


def test_config_option_and_pyproject(app: Path, tmp_path: Path) -> None:
    write(
        app,
        "[tool.other]\nx = 1\n[tool.tapster]\nlog-level = "
        '"debug"\n[tool.tapster.greet-er]\ngreeting = "py"\n',
        "pyproject.toml",
    )
    found = settings(["greet-er"], app)
    assert found["log-level"] == ('"debug"', "pyproject.toml line 4")
    assert found["[greet-er] greeting"] == ('"py"', "pyproject.toml line 6")
    write(app, 'log-level = "error"\n')  # tapster.toml comes before pyproject.toml
    assert settings(["greet-er"], app)["log-level"][0] == '"error"'
    other = write(tmp_path, 'log-level = "warning"\n', "other.toml")
    assert settings(["--config", str(other), "greet-er"], app)["log-level"][0] == '"warning"'
    found = settings(["greet-er"], app, {"TAPSTER_CONFIG": str(other)})
    assert found["log-level"] == ('"warning"', f"{other} line 1")


def test_app_dir_from_the_environment_finds_the_plugin_and_the_file(
    app: Path, tmp_path: Path
) -> None:
    write(app, '[greet-er]\ngreeting = "far"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = settings(["greet-er"], elsewhere, {"TAPSTER_APP_DIR": str(app)})
    assert found["[greet-er] greeting"][0] == '"far"'


def test_a_world_writable_folder_is_not_read_unless_named(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    write(shared, 'log-level = "debug"\n')
    assert settings(["-y", "x.tac"], shared)["log-level"] == ('"info"', "default")
    assert settings(["--app-dir", ".", "-y", "x.tac"], shared)["log-level"][0] == '"debug"'


# -- secrets -------------------------------------------------------------------------------


def test_secrets_come_from_files_and_are_masked(app: Path, tmp_path: Path) -> None:
    secret = tmp_path / "auth"
    secret.write_text("memory:alice:s3cret\nmemory:bob:hunter2\n")
    env = {"TAPSTER_WEB_AUTH_FILE": str(secret), "TAPSTER_GREET_ER_PASSWORD": "pw"}
    result = run_tapster(["--print-config", "web"], cwd=app, env=env)
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout and "hunter2" not in result.stdout
    assert 'auth = ["memory:***", "memory:***"]' in result.stdout
    assert f"# file {secret} (environment TAPSTER_WEB_AUTH_FILE)" in result.stdout
    result = run_tapster(["--print-config", "greet-er", "--password", "pw"], cwd=app, env={})
    assert 'password = "***"' in result.stdout and "pw" not in result.stdout.replace("password", "")
    (app / "pw.txt").write_text("topsecret\n")
    write(app, '[greet-er]\npassword-file = "pw.txt"\n')
    result = run_tapster(["--print-config", "greet-er"], cwd=app)
    assert 'password = "***"' in result.stdout and "topsecret" not in result.stdout


# -- errors ---------------------------------------------------------------------------------


def test_error_messages_name_their_source(app: Path) -> None:
    line = fails(["web"], app, {"TAPSTER_WEB_MAX_BODY": "ten"})
    assert (
        line == "tapster: error: TAPSTER_WEB_MAX_BODY='ten': 'ten' is not a size (examples: 65536, "
        "512K, 10M, 1G)"
    )
    line = fails(["greet-er"], app, {"TAPSTER_GREET_ER_PORT": "99999"})
    assert line.startswith("tapster: error: TAPSTER_GREET_ER_PORT='99999': ")
    line = fails(["greet-er"], app, {"TAPSTER_GREET_ER_NAME": '["ok", "x1"]'})
    assert line == "tapster: error: TAPSTER_GREET_ER_NAME='x1': a name is letters only"
    line = fails(["greet-er"], app, {"TAPSTER_GREET_ER_SHOUT": "maybe"})
    assert (
        line == "tapster: error: TAPSTER_GREET_ER_SHOUT='maybe': expected 1 or 0, true or false, "
        "yes or no"
    )
    line = fails(["greet-er"], app, {"TAPSTER_GREET_ER_NAME": '["Ann", '})
    assert line.startswith(
        "tapster: error: TAPSTER_GREET_ER_NAME='[\"Ann\", ': not a list of values"
    )

    write(app, '# settings\n\n[web]\n\n\n\nmax-body = "ten"\n')
    line = fails(["web"], app)
    assert (
        line == "tapster: error: tapster.toml, [web] max-body (line 7): 'ten' is not a size "
        "(examples: 65536, 512K, 10M, 1G)"
    )
    write(app, 'log-level = "loud"\n')
    assert fails(["web"], app).startswith("tapster: error: tapster.toml, log-level (line 1): ")
    write(app, '[greet-er]\ngreeting = ["a", "b"]\n')
    assert (
        fails(["greet-er"], app)
        == "tapster: error: tapster.toml, [greet-er] greeting (line 2): takes one value, not a list"
    )
    write(app, '[greet-er]\nshout = "yes"\n')
    assert (
        fails(["greet-er"], app)
        == "tapster: error: tapster.toml, [greet-er] shout (line 2): expected true or false, "
        "not the string 'yes'"
    )
    write(app, "[greet-er]\nport = true\n")
    assert (
        fails(["greet-er"], app)
        == "tapster: error: tapster.toml, [greet-er] port (line 2): expected a string or a "
        "number, not true"
    )
    write(app, "[greet-er\n")
    assert fails(["greet-er"], app).startswith("tapster: error: tapster.toml: not valid TOML: ")
    assert fails(["--config", "nope.toml", "greet-er"], app) == (
        "tapster: error: --config 'nope.toml': cannot read the config file: No such file or "
        "directory"
    )


def test_errors_of_post_options_name_the_source_too(app: Path) -> None:
    # A plugin's post_options speaks of --listen; the message names where the value came from.
    line = fails(["web"], app, {"TAPSTER_WEB_LISTEN": "tcp:notaport"})
    assert line == (
        "tapster: error: TAPSTER_WEB_LISTEN='tcp:notaport': bad endpoint 'tcp:notaport': port: "
        "expected a whole number, not 'notaport'"
    )
    line = fails(["web"], app, {"TAPSTER_WEB_LISTEN": "udp:53"})
    assert line == (
        "tapster: error: --listen 'udp:53': HTTP needs a stream endpoint such as tcp:8080, "
        "ssl:8443:cert=FILE or unix:PATH (--listen: TAPSTER_WEB_LISTEN='udp:53')"
    )
    write(app, '[web]\nlisten = ["tcp:8080", "tcp:99999"]\n')
    assert fails(["web"], app) == (
        "tapster: error: tapster.toml, [web] listen (line 2): bad endpoint 'tcp:99999': port "
        "must be 0 to 65535, not 99999"
    )
    # The command line wins, and is named as before.
    assert fails(["web", "--listen", "tcp:99999"], app) == (
        "tapster: error: --listen: bad endpoint 'tcp:99999': port must be 0 to 65535, not 99999"
    )
    # The runner's own checks of several options name each one's source.
    write(app, "nodaemon = true\n")
    line = fails(["greet-er"], app, {"TAPSTER_DAEMON": "1"})
    assert line == (
        "tapster: error: choose -n/--nodaemon or -D/--daemon, not both (--nodaemon: "
        "tapster.toml, nodaemon (line 1); --daemon: TAPSTER_DAEMON='1')"
    )


def test_unknown_keys_and_variables_are_errors_with_a_suggestion(app: Path) -> None:
    write(app, "[greet-er]\n\nshoot = true\n")
    assert fails(["greet-er"], app) == (
        "tapster: error: tapster.toml, [greet-er] shoot (line 3): unknown setting for "
        "'tapster greet-er'; did you mean shout?"
    )
    write(app, 'log-levle = "debug"\n')
    assert fails(["greet-er"], app).startswith(
        "tapster: error: tapster.toml, log-levle (line 1): unknown setting; did you mean log-level"
    )
    write(app, "[greet_er]\nshout = true\n")
    assert (
        fails(["greet-er"], app)
        == "tapster: error: tapster.toml: [greet_er] is not a subcommand; did you mean [greet-er]?"
    )
    write(app, 'subcommand = "greeter"\n')
    assert (
        fails([], app)
        == "tapster: error: tapster.toml, subcommand (line 1): unknown command 'greeter'; did "
        "you mean greet-er?"
    )
    (app / "tapster.toml").unlink()
    line = fails(["greet-er"], app, {"TAPSTER_GREET_ER_GRETING": "x"})
    assert line == (
        "tapster: error: unknown variable TAPSTER_GREET_ER_GRETING (no option --greting in "
        "'tapster greet-er'); did you mean TAPSTER_GREET_ER_GREETING?"
    )
    line = fails(["greet-er"], app, {"TAPSTER_LOGLEVEL": "debug"})
    assert line.startswith(
        "tapster: error: unknown variable TAPSTER_LOGLEVEL (no such option); did you mean "
        "TAPSTER_LOG_LEVEL"
    )


def test_the_command_line_alone_is_what_it_was(app: Path) -> None:
    # No file, no variable: --help does not even import the config package.
    code = (
        "import sys\nfrom tapster.runner import main\ntry:\n    main(['--help'])\nfinally:\n"
        "    sys.stderr.write(repr([m for m in sys.modules if m.startswith('tapster.config') "
        "or m == 'tomllib']))\n"
    )
    import sys

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=app,
        capture_output=True,
        text=True,
        env={"TAPSTER_WEB_MAX_BODY": "ten", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.stderr.strip() == "[]", result.stderr
    assert "--print-config" in result.stdout


LOG = """
from tapster.service import ServiceMaker
from tapster.usage import Options


class LogOptions(Options):
    parameters = [("level", None, "x", "The runner's --log-level has its variable."), ("size",)]


class LogMaker(ServiceMaker):
    tapname = "log"
    description = "A plugin whose variable TAPSTER_LOG_LEVEL is the runner's."
    options = LogOptions

    def make_service(self, options):
        raise NotImplementedError


maker = LogMaker()
"""


def test_help_names_each_options_variable(app: Path) -> None:
    (app / "tapster" / "plugins" / "log_plugin.py").write_text(LOG)
    env = {"COLUMNS": "1000"}  # one line per option

    def rows(args: list[str]) -> dict[str, str]:
        result = run_tapster([*args, "--help"], cwd=app, env=env)
        assert result.returncode == 0, result.stderr
        found = {}
        for line in result.stdout.splitlines():
            if line.lstrip().startswith("-") and "--" in line:
                option = line.split("--", 1)[1].split("=")[0].split()[0]
                found[option] = line.partition("[env: ")[2].rstrip("]")
        return found

    runner = rows([])
    assert runner["log-level"] == "TAPSTER_LOG_LEVEL"
    assert runner["shutdown-timeout"] == "TAPSTER_SHUTDOWN_TIMEOUT"
    for own in ("help", "version", "help-loops", "config", "reload", "print-config", "plugins"):
        assert runner[own] == "", own  # shows something and exits, or only on the command line
    web = rows(["web"])
    assert web["max-body"] == "TAPSTER_WEB_MAX_BODY"
    assert web["listen"] == "TAPSTER_WEB_LISTEN"
    assert web["help-auth"] == ""
    third_party = rows(["greet-er"])
    assert third_party["greeting"] == "TAPSTER_GREET_ER_GREETING"
    assert third_party["shout"] == "TAPSTER_GREET_ER_SHOUT"
    clash = rows(["log"])
    assert clash == {"help": "", "level": "", "size": "TAPSTER_LOG_SIZE"}
    # The names shown are the ones the run reads.
    found = settings(["greet-er"], app, {"TAPSTER_GREET_ER_GREETING": "hi"})
    assert found["[greet-er] greeting"] == ('"hi"', "environment TAPSTER_GREET_ER_GREETING")


def test_every_variable_tapster_sets_for_itself_is_reserved() -> None:
    """A ``TAPSTER_*`` name the runner passes to its own children is never read as an option.

    (``TAPSTER_UPGRADE`` was not: a supervisor re-executed for an upgrade refused
    its own hand-over as an unknown variable.)
    """
    import re

    from tapster.config._environment import RESERVED

    src = Path(__file__).resolve().parents[2] / "src" / "tapster"
    names = set()
    for path in src.rglob("*.py"):
        names.update(re.findall(r'^\w+ = "(TAPSTER_[A-Z_]+)"', path.read_text(), re.M))
    assert names, "the pattern found no constant at all"
    assert names <= RESERVED, names - RESERVED
