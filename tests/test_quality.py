"""The code base's own checks: lint, format and strict typing run with the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.slow
def test_ruff_lint_is_clean() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_ruff_format_is_clean() -> None:
    result = _run("ruff", "format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    # A cache of its own, thrown away: never a device path (mypy writes and renames there).
    result = _run("mypy", "--no-incremental", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_is_typed() -> None:
    assert (ROOT / "src" / "tapster" / "py.typed").is_file()


def test_one_type_checking_style() -> None:
    """Every module guards type-only imports with ``TYPE_CHECKING = False``.

    Importing the name from ``typing`` would load ``typing`` on the ``tapster
    --help`` path; one spelling everywhere keeps a newcomer from wondering why two exist.
    """
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "src" / "tapster").rglob("*.py"))
        if "import TYPE_CHECKING" in path.read_text(encoding="utf-8")
        or "typing.TYPE_CHECKING" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
