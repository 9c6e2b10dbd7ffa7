"""``tapster --chroot JAIL web --path DIR``: DIR is a folder as the server sees it, inside JAIL.

The folder is looked up after the chroot, when the server starts: a folder that
exists only outside the jail fails start-up in one line naming the folder and the
jail (instead of a server that answers 404 to everything), and a folder that
exists only inside the jail is served.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import free_port

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")


def start_fails(tapster_proc: Any, *args: str, cwd: Path) -> tuple[int, str]:
    """Start ``tapster ARGS``, which must exit by itself; its status and stderr."""
    listen = f"tcp:{free_port()}:interface=127.0.0.1"
    proc = tapster_proc.start(*args[:-2], "--listen", listen, *args[-2:], cwd=cwd)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("tapster web started although its folder is missing") from None
    return proc.returncode, err


def message(stderr: str) -> list[str]:
    """stderr without the log lines written before start-up failed."""
    return [line for line in stderr.splitlines() if line.startswith("tapster: ")]


@needs_root
def test_a_folder_outside_the_jail_fails_start_up(tapster_proc: Any, tmp_path: Path) -> None:
    jail = tmp_path / "jail"
    jail.mkdir()
    outside = tmp_path / "public"
    outside.mkdir()
    (outside / "index.html").write_text("outside")
    status, err = start_fails(
        tapster_proc, "--chroot", str(jail), "web", "--path", str(outside), cwd=tmp_path
    )
    assert status == 1, err
    assert "Traceback" not in err
    assert message(err) == [
        f"tapster: cannot start web: web: the folder to serve {outside} does not exist "
        f"inside the chroot {jail}"
    ], err


@needs_root
def test_a_link_that_leads_out_of_the_jail_fails_start_up(
    tapster_proc: Any, tmp_path: Path
) -> None:
    """Outside the jail the link leads somewhere; inside it, nowhere: checked after chroot."""
    jail = tmp_path / "jail"
    jail.mkdir()
    (tmp_path / "public").mkdir()
    (jail / "www").symlink_to(tmp_path / "public")
    status, err = start_fails(
        tapster_proc, "--chroot", "jail", "web", "--path", "/www", cwd=tmp_path
    )
    assert status == 1, err
    assert message(err) == [
        f"tapster: cannot start web: web: the folder to serve /www does not exist "
        f"inside the chroot {jail}"
    ], err


@needs_root
def test_a_file_inside_the_jail_is_not_a_folder(tapster_proc: Any, tmp_path: Path) -> None:
    jail = tmp_path / "jail"
    jail.mkdir()
    (jail / "page.html").write_text("x")
    status, err = start_fails(
        tapster_proc, "--chroot", str(jail), "web", "--path", "/page.html", cwd=tmp_path
    )
    assert status == 1, err
    assert message(err) == [
        f"tapster: cannot start web: web: the folder to serve /page.html is not a folder "
        f"inside the chroot {jail}"
    ], err


@needs_root
@pytest.mark.parametrize("path", ["/srv/www", "srv/www"], ids=["absolute", "relative"])
def test_a_folder_only_inside_the_jail_is_served(serve: Any, tmp_path: Path, path: str) -> None:
    """Absolute: from the jail's root; relative: from the run directory inside the jail."""
    jail = tmp_path / "jail"
    (jail / "srv" / "www" / "sub").mkdir(parents=True)
    (jail / "srv" / "www" / "index.html").write_text("inside the jail")
    assert not Path(path).is_absolute() or not Path(path).exists()
    web = serve("--path", path, runner=["--chroot", str(jail)], cwd=tmp_path)
    assert web.get("/")[0::2] == (200, b"inside the jail")
    assert web.get("/missing")[0] == 404
    status, _, listing = web.get("/sub/")
    assert status == 200 and b"sub" in listing


def test_without_chroot_a_folder_removed_before_start_fails_it(tmp_path: Path) -> None:
    """The same check guards a service built from Python (a .tac file) with no chroot."""
    import asyncio

    from tapster.web import WebConfig, WebService
    from tapster.web._static import RootFolderError

    root = tmp_path / "public"
    root.mkdir()
    service = WebService(WebConfig(root=root), [f"tcp:{free_port()}:interface=127.0.0.1"])
    root.rmdir()
    with pytest.raises(RootFolderError, match=f"^the folder to serve {root} does not exist$"):
        asyncio.run(service.start())


@needs_root
@pytest.mark.slow
def test_workers_each_enter_the_jail(serve: Any, tmp_path: Path) -> None:
    """``--workers``: the supervisor stays outside (it starts fresh interpreters), each worker
    enters the chroot and drops to ``nobody``, and serves what is only inside the jail."""
    jail = tmp_path / "jail"
    (jail / "srv" / "www").mkdir(parents=True)
    (jail / "srv" / "www" / "index.html").write_text("inside the jail")
    runner = ["--chroot", str(jail), "-w", "2", "-u", "nobody"]
    web = serve("--path", "/srv/www", runner=runner, cwd=tmp_path)
    for _ in range(4):
        assert web.get("/")[0::2] == (200, b"inside the jail")
