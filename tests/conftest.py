"""Fixtures shared by the whole suite."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import tapster_cmd, tapster_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from browser import DevTools


class ProcessTracker:
    """Starts ``tapster`` subprocesses and guarantees that each one is stopped."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(
        self,
        *args: str,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> subprocess.Popen[str]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(
            tapster_cmd(*args), cwd=cwd, env=tapster_env(env), text=True, **kwargs
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def tapster_proc() -> Iterator[ProcessTracker]:
    """Start real ``tapster`` processes; every one is stopped when the test ends."""
    tracker = ProcessTracker()
    try:
        yield tracker
    finally:
        tracker.stop_all()


def _loop_factories() -> list[Any]:
    params: list[Any] = [pytest.param(None, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        params.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip("no uvloop")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


@pytest.fixture(params=_loop_factories())
def run_async(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Run coroutines on a fresh event loop: the standard asyncio loop, then uvloop.

    ``run_async(coro)`` returns the coroutine's result; the loop lives for the
    whole test (so services started in one call can be stopped in the next)
    and is closed at teardown.
    """
    import asyncio

    runner = asyncio.Runner(loop_factory=request.param, debug=False)
    try:
        yield runner.run
    finally:
        runner.close()


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """The Chromium executable (installed when missing and possible), else the test is skipped."""
    from browser import find_chromium

    found = find_chromium()
    if found is None:
        pytest.skip(
            "Chromium is not installed and could not be installed here "
            "(needs root and apt-get: apt-get install -y chromium)"
        )
    return found


@pytest.fixture
def chromium(tmp_path: Path, chromium_binary: str) -> Iterator[DevTools]:
    """A headless Chromium driven over DevTools (``tests/browser.py``), stopped at teardown."""
    from browser import launch

    with launch(chromium_binary, tmp_path / "chromium-profile") as devtools:
        yield devtools
