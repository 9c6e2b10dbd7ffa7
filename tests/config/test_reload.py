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
    """Seconds until the server answers ``expected``; every connection meanwhile is answered.

    The listening socket outlives each child (the reloader holds it, the next child starts
    on it before the previous one stops): no connection is refused nor left unanswered.
    """
    start = time.monotonic()
    while True:
        if read_line(port) == expected:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"never answered {expected!r}"
        time.sleep(0.02)


FAILING_MAKER = """\
    def make_service(self, options):
        raise RuntimeError("no database here")

    def unused(self, options):
"""


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
        env={"TAPSTER_RELOAD_WATCHER": watcher, "PYTHONDONTWRITEBYTECODE": ""},  # .pyc as usual
        stderr=(app / "reload.err").open("w"),
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

    # A failure later in the start (here in make_service) also leaves the old code serving.
    failing = original.replace("    def make_service(self, options):\n", FAILING_MAKER)
    plugin.write_text(failing.replace('"hello"', '"failing"'))
    time.sleep(1)
    deadline = time.monotonic() + 10
    while "failed to start" not in (app / "reload.err").read_text():
        assert time.monotonic() < deadline, "the failure was never reported"
        assert read_line(port) == "fixed"
        time.sleep(0.05)
    assert read_line(port) == "fixed"

    second = int(time.time()) * 10**9
    plugin.write_text(original.replace('"hello"', '"again"'))
    os.utime(plugin, ns=(second, second + 100_000_000))
    assert answer_becomes(port, "again") < 5
    # The same size and the same whole second of mtime: the .pyc the last child wrote
    # looks current to Python, unless the reloader removed it.
    time.sleep(1)
    plugin.write_text(original.replace('"hello"', '"AGAIN"'))
    os.utime(plugin, ns=(second, second + 200_000_000))
    assert answer_becomes(port, "AGAIN") < 5

    proc.terminate()
    proc.communicate(timeout=20)
    err = (app / "reload.err").read_text()
    assert proc.returncode == 0, err
    assert f"with {'polling' if watcher == 'poll' else 'watchfiles'}" in err
    assert "greeter_plugin.py does not compile: invalid syntax" in err
    assert "tapster: cannot build greet-er: RuntimeError: no database here (at " in err
    assert "reload: not restarted, the new code failed to start (above); the previous" in err
    # A developer is watching: the failed start's traceback follows its one line,
    # down to the plugin's own raise.
    assert "Traceback (most recent call last)" in err
    assert 'raise RuntimeError("no database here")' in err or "no database here" in err
    assert "greeter_plugin.py" in err.split("Traceback (most recent call last)")[1]


def test_reload_is_for_the_foreground(app: Path) -> None:
    from support import run_tapster

    result = run_tapster(["--reload", "-D", "greet-er"], cwd=app)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "tapster: error: --reload runs in the foreground; drop --daemon"
    )
    assert os.path.exists(app)
    result = run_tapster(["--reload", "--workers", "2", "greet-er"], cwd=app)
    assert result.returncode == 2
    assert result.stderr.startswith("tapster: error: --reload runs one process; drop --workers")
