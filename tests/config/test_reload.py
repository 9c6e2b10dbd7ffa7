"""``tapster --reload``: an edit changes the answer; a broken edit leaves the old code serving."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest
from support import free_port, read_line, wait_for_line

WATCHERS = [
    pytest.param("poll", id="poll"),
    pytest.param(
        "watchfiles",
        id="watchfiles",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("watchfiles") is None, reason="extra tapster[reload] missing"
        ),
    ),
]


def answer_becomes(port: int, expected: str, timeout: float = 10.0) -> float:
    """Seconds until the server answers ``expected``."""
    start = time.monotonic()
    while True:
        try:
            if read_line(port) == expected:
                return time.monotonic() - start
        except OSError:
            pass
        assert time.monotonic() - start < timeout, f"never answered {expected!r}"
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("watcher", WATCHERS)
def test_reload_picks_up_an_edit_and_survives_a_syntax_error(
    app: Path, tapster_proc, watcher: str
) -> None:
    port = free_port()
    plugin = app / "tapster" / "plugins" / "greeter_plugin.py"
    original = plugin.read_text()
    proc = tapster_proc.start(
        "--reload",
        "greet-er",
        "--port",
        str(port),
        cwd=app,
        env={"TAPSTER_RELOAD_WATCHER": watcher},
    )
    assert wait_for_line(proc, port) == "hello"
    time.sleep(0.5)  # the watcher's first look

    plugin.write_text(original.replace('"hello"', '"edited"'))
    assert answer_becomes(port, "edited") < 5

    plugin.write_text(original.replace('"hello"', '"broken"') + "\ndef (:\n")
    time.sleep(2)
    assert read_line(port) == "edited"  # the previous process keeps serving

    plugin.write_text(original.replace('"hello"', '"fixed"'))
    assert answer_becomes(port, "fixed") < 5

    proc.terminate()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"with {'polling' if watcher == 'poll' else 'watchfiles'}" in err
    assert "greeter_plugin.py does not compile: invalid syntax" in err
    assert "Traceback" not in err


def test_reload_is_for_the_foreground(app: Path) -> None:
    from support import run_tapster

    result = run_tapster(["--reload", "-D", "greet-er"], cwd=app)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "tapster: error: --reload runs in the foreground; drop --daemon"
    )
    assert os.path.exists(app)
