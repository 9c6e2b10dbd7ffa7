"""Fixtures shared by the whole suite."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import tapster_cmd, tapster_env


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
