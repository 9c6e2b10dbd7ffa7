"""docs/usage.md stays true: its example runs and prints what the page shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "usage.md"


def test_the_example_runs_and_prints_the_shown_help() -> None:
    blocks = re.findall(r"```(\w*)\n(.*?)```", DOC.read_text(), re.S)
    language, code = blocks[0]
    assert language == "python"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"__name__": "usage_doc_example"})
    assert out.getvalue() == blocks[1][1]


def test_every_error_shown_is_a_real_message() -> None:
    text = DOC.read_text()
    shown = re.search(r"names the option and what is wrong.*?```\n(.*?)```", text, re.S)
    assert shown is not None
    from tapster.usage import Options, UsageError, port

    class Example(Options):
        parameters = [("port", "p", 1, "", port)]
        flags = [("nodaemon", "n", "")]
        subcommands = [("serve", None, Options, "")]

        def opt_auth(self, value: str) -> None:
            raise ValueError("expected TYPE:ARGS, for example memory:alice:secret")

    class NoCommands(Options):
        pass

    produced = set()
    for argv in (
        ["--prot"],
        ["-nz"],
        ["--port"],
        ["--nodaemon=yes"],
        ["-p", "99999"],
        ["--auth", "x"],
        ["srve"],
        ["x"],
    ):
        try:
            Example().parse_options(argv)
        except UsageError as error:
            produced.add(str(error))
    try:
        NoCommands().parse_options(["extra"])
    except UsageError as error:
        produced.add(str(error))
    assert set(shown.group(1).splitlines()) == produced
