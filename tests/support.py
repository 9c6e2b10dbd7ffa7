"""Helpers shared by the tests: free ports, waiting for sockets, running `tapster`.

Every process started through these helpers is tracked and stopped by the test
that started it (use the ``tapster_proc`` fixture from ``conftest.py``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until a TCP connect to ``host:port`` succeeds, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


def tapster_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a ``tapster`` subprocess: this checkout's code, no stray caches."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if extra:
        env.update(extra)
    return env


def tapster_cmd(*args: str) -> list[str]:
    """The argv that runs the real ``tapster`` command of this checkout."""
    return [sys.executable, "-m", "tapster", *args]


def run_tapster(
    args: Sequence[str],
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``tapster ARGS`` to completion and return its result (text mode)."""
    return subprocess.run(
        tapster_cmd(*args),
        cwd=cwd,
        env=tapster_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )
