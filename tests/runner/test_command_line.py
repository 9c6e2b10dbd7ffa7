"""The command line: help from drop-in plugins, subcommand help, usage errors."""

from __future__ import annotations

import sys
from pathlib import Path

from support import run_tapster


def test_help_lists_drop_in_plugins_of_the_project_folder(project: Path) -> None:
    result = run_tapster(["--help"], cwd=project)
    assert result.returncode == 0, result.stderr
    commands = result.stdout.split("Commands:", 1)[1]
    assert "myproject" in commands
    assert "Run this! It'll make your dog happy." in commands
    for option in ("--daemon", "--pidfile", "--uid", "--loop", "--shutdown-timeout", "--app-dir"):
        assert option in result.stdout


def test_help_imports_no_plugin_nor_asyncio_nor_logging(project: Path) -> None:
    # The first run fills the plugin cache (that imports the plugin, once).
    assert run_tapster(["--help"], cwd=project).returncode == 0
    code = (
        "import sys\n"
        "from tapster.runner import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "finally:\n"
        "    bad = [m for m in sys.modules if m.split('.')[0] in "
        "('asyncio', 'logging', 'myproject') or m.startswith('tapster.plugins.')]\n"
        "    sys.stderr.write(repr(bad))\n"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=False
    )
    assert "myproject" in result.stdout
    assert result.stderr.strip() == "[]"


def test_app_dir_points_at_another_folder(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_tapster(["--app-dir", str(project), "--help"], cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "myproject" in result.stdout.split("Commands:", 1)[1]
    without = run_tapster(["--help"], cwd=elsewhere)
    assert "myproject" not in without.stdout


def test_subcommand_help_shows_the_plugin_options(project: Path) -> None:
    result = run_tapster(["myproject", "--help"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: tapster [options] myproject [myproject options]")
    assert "--port" in result.stdout
    assert "1235" in result.stdout


def test_bare_tapster_prints_help_and_exits_2(project: Path) -> None:
    result = run_tapster([], cwd=project)
    assert result.returncode == 2
    assert "Commands:" in result.stderr
    assert "no subcommand given" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_subcommand_suggests_the_closest_name(project: Path) -> None:
    result = run_tapster(["myprojetc"], cwd=project)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert "unknown command 'myprojetc'" in first
    assert "did you mean myproject" in first
    assert "--help" in result.stderr.splitlines()[1]


def test_usage_errors_are_one_line_and_status_2(project: Path) -> None:
    cases = [
        ["--uid", "no-such-user-here", "myproject"],
        ["--gid", "no-such-group-here", "myproject"],
        ["--loop", "nonsense", "myproject"],
        ["--log-level", "loud", "myproject"],
        ["--umask", "9", "myproject"],
        ["--no-such-option"],
        ["myproject", "--port", "99999"],
        ["-D", "-l", "-", "myproject"],
        ["-y", "x.tac", "myproject"],
    ]
    for args in cases:
        result = run_tapster(args, cwd=project)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 2, (args, result.stderr)
        assert lines[0].startswith("tapster: error: "), args
        assert "--help" in lines[1]
    result = run_tapster(["--uid", "no-such-user-here", "myproject"], cwd=project)
    assert "no-such-user-here" in result.stderr
    result = run_tapster(["myproject", "--port", "99999"], cwd=project)
    assert "tapster myproject --help" in result.stderr


def test_version(project: Path) -> None:
    from tapster import __version__

    result = run_tapster(["--version"], cwd=project)
    assert result.returncode == 0
    assert result.stdout.strip() == f"tapster {__version__}"


def test_help_loops_lists_what_is_available() -> None:
    result = run_tapster(["--help-loops"])
    assert result.returncode == 0
    for name in ("auto", "asyncio", "uvloop", "module:factory"):
        assert name in result.stdout


def test_python_dash_m_and_console_script_are_the_same(project: Path) -> None:
    import subprocess

    script = Path(sys.executable).parent / "tapster"
    direct = subprocess.run(
        [str(script), "--help"], cwd=project, capture_output=True, text=True, check=False
    )
    assert direct.returncode == 0
    assert direct.stdout == run_tapster(["--help"], cwd=project).stdout.replace(
        "Usage: __main__", "Usage: tapster"
    )


def test_help_into_a_closed_pipe_fails_quietly(project: Path) -> None:
    """``tapster --help | head -1`` when head is gone: status 1, no traceback, no noise."""
    import os
    import subprocess

    from support import tapster_cmd, tapster_env

    # Enough plugins that the help no longer fits in the pipe's buffer, and a few
    # without: the failure then comes from the final flush, not from the write.
    plugins = project / "tapster" / "plugins"
    big = project.parent / "big"
    (big / "tapster" / "plugins").mkdir(parents=True)
    for i in range(800):
        (big / "tapster" / "plugins" / f"p{i:03d}.py").write_text(
            (plugins / "myproject_plugin.py").read_text().replace("myproject", f"cmd{i:03d}")
        )
    runs = [
        (folder, argv, cold)
        for folder in (project, big)
        for argv in (tapster_cmd("--help"), tapster_cmd("--version"))
        for cold in (True, False)  # a scan imports plugin modules first; then none
    ]
    for folder, argv, cold in runs:
        if cold:
            (folder / "tapster" / "plugins" / ".tapster-plugin-cache.json").unlink(missing_ok=True)
        else:
            assert run_tapster(["--help"], cwd=folder).returncode == 0  # warm the caches
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            result = subprocess.run(
                argv, cwd=folder, env=tapster_env(), stdout=write_end, stderr=subprocess.PIPE,
                text=True, timeout=60, check=False,
            )  # fmt: skip
        finally:
            os.close(write_end)
        assert (result.returncode, result.stderr) == (1, ""), (folder, argv, cold)


def test_help_that_cannot_be_written_says_so_in_one_line(project: Path) -> None:
    import subprocess

    from support import tapster_cmd, tapster_env

    with open("/dev/full", "w") as full:
        result = subprocess.run(
            tapster_cmd("--help"), cwd=project, env=tapster_env(), stdout=full,
            stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == "tapster: cannot write to standard output: No space left on device\n"
    closed = subprocess.run(
        [*tapster_cmd("--help")], cwd=project, env=tapster_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        preexec_fn=lambda: __import__("os").close(1),
    )  # fmt: skip
    assert closed.returncode == 1
    assert closed.stderr == "tapster: cannot write to standard output: it is closed\n"


def test_main_help_in_process_leaves_the_garbage_collector_on(project: Path) -> None:
    """--help turns the collector off for the listing; a caller's process gets it back."""
    import subprocess

    code = (
        "import gc, sys\n"
        "from tapster.runner import main\n"
        "status = main(['--help'])\n"
        "sys.stderr.write(f'{status} {gc.isenabled()}')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.stderr == "0 True"
    assert "Commands:" in result.stdout


def test_a_world_writable_current_directory_is_not_put_on_sys_path(project: Path) -> None:
    import subprocess

    from support import tapster_env

    project.chmod(0o1777)  # like /tmp: anyone could drop an asyncio.py here
    script = str(Path(sys.executable).parent / "tapster")

    def run(*args: str) -> str:
        return subprocess.run(
            [script, *args], cwd=project, env=tapster_env(), capture_output=True, text=True
        ).stdout

    assert "myproject" not in run("--help")
    assert "myproject" in run("--app-dir", ".", "--help")  # asked for explicitly


MAKER = """
from tapster.service import ServiceMaker


class _Maker(ServiceMaker):
    tapname = {name!r}
    description = {description!r}
    options = None

    def make_service(self, options):
        raise NotImplementedError


maker = _Maker()
"""

AWKWARD = {
    "plain": "An ordinary command.",
    "lines": "A first line.\nThen more that is not listed.",
    "tabbed": "A doc\twith a tab.",
    "spaced": "  Two  spaces inside, and around.  ",
    "empty": "",
    "long": "A very long description that certainly does not fit on one line of help. " * 3,
    "a_command_name_longer_than_the_label_column": "Its doc.",
    "nameless": "Named by its attribute.",
}


def test_the_listing_is_formatted_exactly_as_the_subcommand_rows_are(project: Path) -> None:
    """--help lists from two plain lists; the rows that parsing uses must read the same."""
    import subprocess

    plugins = project / "tapster" / "plugins"
    for name, description in AWKWARD.items():
        source = MAKER.format(name="" if name == "nameless" else name, description=description)
        (plugins / f"awkward_{name}.py").write_text(source)
    code = (
        "import sys\n"
        "from tapster.runner import RunnerOptions\n"
        "for width in (40, 80, 200):\n"
        "    options = RunnerOptions()\n"
        "    listed = options.help_text(width)\n"
        "    options.subcommands\n"
        "    assert options.help_text(width) == listed, width\n"
        "    print(listed)\n"
    )
    for _ in range(2):  # scanned, then from the cache
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
    assert "  lines " in result.stdout and "Then more" not in result.stdout
    assert "  maker " in result.stdout  # the nameless plugin, named by its attribute


def test_the_one_piece_command_table_is_the_row_by_row_one() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tapster.usage._help import _command_table, _table

    def rows_of(alphabet: str) -> st.SearchStrategy[list[tuple[str, str | None]]]:
        text = st.text(alphabet=st.sampled_from(alphabet), max_size=50)
        return st.lists(st.tuples(text, st.one_of(text, st.none())), min_size=1, max_size=8)

    # Any text, and printable text (which mostly takes the one-piece way).
    tables = st.sampled_from(["ab \t\nxyzé\u00a0", "abcé x"]).flatmap(rows_of)

    def one_by_one(raw: object) -> str:  # what each row's doc went through, row by row
        doc = str(raw).strip() if raw else ""
        return doc.splitlines()[0] if doc and not doc.isprintable() else doc

    @settings(max_examples=500, deadline=None)
    @given(tables, st.integers(40, 120))
    def check(rows: list[tuple[str, str | None]], width: int) -> None:
        labels = [label for label, _ in rows]
        expected = _table([(label, one_by_one(raw)) for label, raw in rows], width)
        # The same text (one piece or a line per row: help_text joins them with newlines).
        got = _command_table(labels, [raw for _, raw in rows], width)
        assert "\n".join(got) == "\n".join(expected)

    check()
