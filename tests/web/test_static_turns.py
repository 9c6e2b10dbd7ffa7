"""The file cache's freshness check: at most one ``stat`` of a file per turn of the loop.

In process, with the real ``StaticFiles`` on real files and a real event loop (both loops):
requests answered in one turn share the first one's ``stat``; the next turn checks again,
so a change made between turns is always seen.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tapster.web import _static
from tapster.web._config import WebConfig
from tapster.web._http import Request, Response, resolve

LOOPS = ["asyncio", "uvloop"]


def _run(loop_name: str, main: Callable[[], Any]) -> Any:
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(main())
    return asyncio.run(main())


def _get(path: bytes) -> Request:
    return Request("GET", path, path, b"", "1.1", [(b"host", b"x")], True)


async def _answer(files: _static.StaticFiles, path: bytes) -> Response:
    result = await resolve(files.handle(_get(path)))
    assert isinstance(result, Response)
    return result


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path ``_static`` stats, in order (the real ``os.stat`` still answers)."""
    seen: list[str] = []
    real = os.stat

    def counting(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        seen.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(_static.os, "stat", counting)
    return seen


@pytest.mark.parametrize("loop_name", LOOPS)
def test_one_stat_per_file_per_turn(tmp_path: Path, stats: list[str], loop_name: str) -> None:
    page = tmp_path / "page.txt"
    page.write_bytes(b"one")

    async def main() -> None:
        files = _static.StaticFiles(WebConfig(root=tmp_path))
        files.start()
        assert (await _answer(files, b"/page.txt")).body == b"one"  # read into the cache
        await asyncio.sleep(0)
        stats.clear()
        for _ in range(20):  # one turn: the first request stats, the others reuse it
            result = files.handle(_get(b"/page.txt"))
            assert isinstance(result, Response) and result.body == b"one"
        assert stats == [str(page)]
        await asyncio.sleep(0)  # the next turn checks again
        assert (await _answer(files, b"/page.txt")).body == b"one"
        assert stats == [str(page)] * 2

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_change_between_turns_is_seen(tmp_path: Path, loop_name: str) -> None:
    page = tmp_path / "page.txt"
    page.write_bytes(b"old")

    async def main() -> None:
        files = _static.StaticFiles(WebConfig(root=tmp_path))
        files.start()
        assert (await _answer(files, b"/page.txt")).body == b"old"
        await asyncio.sleep(0)
        assert (await _answer(files, b"/page.txt")).body == b"old"
        page.write_bytes(b"new")  # same size, in place: only the stat can tell
        await asyncio.sleep(0)
        assert (await _answer(files, b"/page.txt")).body == b"new"
        replacement = tmp_path / "next.txt"
        replacement.write_bytes(b"third!")
        replacement.replace(page)  # an atomic deploy: a new inode under the same name
        await asyncio.sleep(0)
        assert (await _answer(files, b"/page.txt")).body == b"third!"
        page.unlink()
        await asyncio.sleep(0)
        assert (await _answer(files, b"/page.txt")).status == 404

    _run(loop_name, main)
