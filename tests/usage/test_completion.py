"""Shell completion: the data, and the bash, zsh and fish scripts run by the real shells."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from support import ensure_tool

from tapster.usage import (
    SHELLS,
    Options,
    bash_completion,
    choice,
    completion_data,
    completion_script,
    existing_dir,
    existing_file,
    fish_completion,
    port,
    zsh_completion,
)


class Serve(Options):
    parameters = [
        ("root", "r", ".", "The directory [to] serve: here.", existing_dir),
        ("mode", "m", "fast", "It's the mode.", choice("fast", "slow")),
    ]
    flags = [("force", "f", "Force.")]


class Top(Options):
    version = "1"
    parameters = [
        ("port", "p", 1235, "The port.", port),
        ("config", "c", None, "A config file.", existing_file),
    ]
    flags = [("nodaemon", "n", "Stay in the foreground.")]
    calls: list[str] = []

    def opt_auth(self, value: str) -> None:
        """Add a checker."""

    opt_auth.completion = ("memory", "file")  # type: ignore[attr-defined]

    @property
    def subcommands(self) -> Sequence[Sequence[Any]]:
        def broken() -> Options:
            raise ImportError("this plugin is broken")

        return [
            ("serve", "s", Serve, "Serve files.\nMore text."),
            ("broken", None, broken, "A broken plugin."),
        ]


def test_completion_data() -> None:
    data = completion_data(Top, "tapster")
    assert data["name"] == "tapster"
    by_name = {o["long"][0]: o for o in data["options"]}
    assert set(by_name) == {"auth", "config", "help", "nodaemon", "port", "version"}
    assert by_name["port"] == {
        "long": ["port"],
        "short": ["p"],
        "takes_value": True,
        "complete": None,
        "repeatable": False,
        "doc": "The port.",
    }
    assert by_name["config"]["complete"] == "file"
    assert by_name["auth"]["complete"] == ["memory", "file"]
    assert by_name["auth"]["repeatable"] is True
    assert by_name["nodaemon"]["takes_value"] is False
    serve, broken = data["commands"]
    assert (serve["name"], serve["short"], serve["doc"]) == ("serve", "s", "Serve files.")
    sub = {o["long"][0]: o for o in serve["options"]}
    assert sub["root"]["complete"] == "dir"
    assert sub["mode"]["complete"] == ["fast", "slow"]
    assert broken["name"] == "broken"
    assert broken["options"] == []  # a broken factory does not break completion


def test_unknown_shell() -> None:
    assert SHELLS == ("bash", "zsh", "fish")
    with pytest.raises(ValueError, match="use one of: bash, zsh, fish"):
        completion_script("tcsh", Top)
    assert completion_script("bash", Top(), "tapster") == bash_completion(Top, "tapster")


BASH_DRIVER = """
source "$1"
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMPREPLY=()
_tapster_complete
printf '%s\\n' "${COMPREPLY[@]}"
"""


def bash_complete(script: Path, *words: str) -> list[str]:
    result = subprocess.run(
        ["bash", "-c", BASH_DRIVER, "driver", str(script), "tapster", *words],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stderr == ""
    return sorted(line for line in result.stdout.splitlines() if line)


@pytest.fixture
def bash_script(tmp_path: Path) -> Path:
    script = tmp_path / "tapster.bash"
    script.write_text(bash_completion(Top, "tapster"))
    return script


def test_bash_completes_options_commands_and_values(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert bash_complete(bash_script, "--p") == ["--port="]
    assert bash_complete(bash_script, "-n", "s") == ["serve"]
    assert bash_complete(bash_script, "") == sorted(
        [
            "--auth=",
            "--config=",
            "-c",
            "--help",
            "--nodaemon",
            "-n",
            "--port=",
            "-p",
            "--version",
            "serve",
            "broken",
        ]
    )
    assert bash_complete(bash_script, "s", "--") == ["--force", "--help", "--mode=", "--root="]
    assert bash_complete(bash_script, "-p", "80", "serve", "--mode", "") == ["fast", "slow"]
    assert bash_complete(bash_script, "serve", "-fm", "s") == ["slow"]
    assert bash_complete(bash_script, "serve", "--mode", "=", "f") == ["fast"]
    assert bash_complete(bash_script, "--auth", "m") == ["memory"]
    assert bash_complete(bash_script, "serve", "--root", str(tmp_path) + "/") == [
        str(tmp_path / "sub")
    ]
    files = bash_complete(bash_script, "-c", str(tmp_path) + "/")
    assert str(tmp_path / "file.txt") in files
    # After a value attached to a short option the next word is a command again.
    assert bash_complete(bash_script, "-p80", "se") == ["serve"]
    # Options of the parent are not offered inside the subcommand.
    assert "--port=" not in bash_complete(bash_script, "serve", "-")


def installed(binary: str) -> str:
    """The path of a shell, installed first if need be (inside the test, under its timeout)."""
    found = ensure_tool(binary, binary)  # the Debian packages are named after the shells
    if found is None:
        pytest.skip(f"{binary} is not installed (Debian package {binary})")
    return found


@pytest.fixture
def zsh() -> str:
    return installed("zsh")


@pytest.fixture
def fish() -> str:
    return installed("fish")


def test_zsh_script_is_valid(tmp_path: Path, zsh: str) -> None:
    script = tmp_path / "_tapster"
    script.write_text(zsh_completion(Top, "tapster"))
    text = script.read_text()
    assert text.startswith("#compdef tapster\n")
    assert "'(-p --port)--port=[The port.]:port: '" in text
    assert "'*--auth=[Add a checker.]:auth:(memory file)'" in text
    assert "The directory \\[to\\] serve\\: here." in text
    subprocess.run([zsh, "-n", str(script)], check=True, timeout=30)
    # Loading the functions (not running them) must work too.
    result = subprocess.run(
        [zsh, "-f", "-c", f"source {script} 2>&1 >/dev/null; whence -w _tapster__serve"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "_tapster__serve: function" in result.stdout


ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z "bindkey '^I' list-choices; PS1='%% '"
zpty -w -n z "$2"$'\t'
# Wait for the typed line, the listing, then the line drawn again below it.
local shown="${2% }"
zpty -r z out "*$shown*$shown*"
print -r -- "$out"
zpty -d z
"""


def test_zsh_completes(tmp_path: Path, zsh: str) -> None:
    """Real zsh completion, driven through a pseudo-terminal (zsh/zpty)."""
    (tmp_path / "_tapster").write_text(zsh_completion(Top, "tapster"))
    shell = zsh

    def zsh_lists(line: str) -> str:
        result = subprocess.run(
            [shell, "-f", "-c", ZSH_DRIVER, "driver", str(tmp_path), line],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stdout).replace("\r", "")
        # The typed line, the candidates, then the line drawn again.
        parts = screen.split(line.rstrip())
        assert len(parts) >= 3, screen
        return parts[-2]

    assert "--port  -- The port." in zsh_lists("tapster --p")
    listed = zsh_lists("tapster s --")
    assert "--mode" in listed and "--root" in listed and "--force" in listed
    assert "--port" not in listed
    assert "fast  slow" in zsh_lists("tapster serve --mode ")
    listed = zsh_lists("tapster ")
    assert "serve" in listed and "broken" in listed


def test_fish_completes(tmp_path: Path, fish: str) -> None:
    script = tmp_path / "tapster.fish"
    script.write_text(fish_completion(Top, "tapster"))
    shell = fish

    def fish_lists(line: str) -> list[str]:
        result = subprocess.run(
            [shell, "--no-config", "-c", f"source {script}; complete -C {line!r}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return sorted(entry.split("\t")[0] for entry in result.stdout.splitlines())

    assert fish_lists("tapster --p") == ["--port"]
    assert fish_lists("tapster ") == ["broken", "serve"]
    assert fish_lists("tapster s --") == ["--force", "--help", "--mode", "--root"]
    assert fish_lists("tapster serve --mode ") == ["fast", "slow"]
    assert "It's the mode." in script.read_text().replace("\\'", "'")
