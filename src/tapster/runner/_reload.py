"""``tapster --reload``: for development, run the service in a child and restart it on a save.

The reloader runs the same command line in a child process (``$TAPSTER_RELOADED`` tells
the child not to reload in turn) and watches the app directory and the plugin folders
for changed ``.py`` files (and ``--reload-include`` globs): with ``watchfiles`` when it is
installed (extra ``tapster[reload]``), else by polling modification times twice a
second. On a change it first checks the new code without stopping anything: the changed
files must compile, and ``tapster --print-config`` with the same arguments must load the
plugin and accept its options. When that fails the error is shown (the syntax error with
its line, or the one-line error) and the running child keeps serving until the next
save; otherwise the child is stopped (SIGTERM) and a new one started.

Imported only when ``--reload`` is given: ``tapster --help`` never loads it.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType
    from typing import Any

__all__ = ["RELOADED", "WATCHER", "reload_command", "run_reload"]

RELOADED = "TAPSTER_RELOADED"
"""Set in the child's environment: it runs the service and does not reload itself."""
WATCHER = "TAPSTER_RELOAD_WATCHER"
"""``poll`` or ``watchfiles`` to choose the watcher (default: watchfiles when installed)."""

POLL_INTERVAL = 0.5
_SKIPPED = frozenset({"__pycache__", "node_modules", ".git", ".venv", "venv", ".tox"})
_STOP_WAIT = 15.0


def reload_command(options: Any, args: list[str]) -> int:
    """``tapster --reload ARGS``: watch the app directory and every plugin folder."""
    import tapster.plugins

    folders = [options.app_path or os.getcwd(), *tapster.plugins.__path__]
    return run_reload(args, folders, list(options.get("reload_include") or ()))


def run_reload(args: list[str], folders: list[str], include: list[str]) -> int:
    """Run ``tapster ARGS`` in a child, restarting it when ``folders`` change; the exit status."""
    folders = _outermost(folders)
    env = dict(os.environ)
    env[RELOADED] = "1"
    command = [sys.executable, "-m", "tapster", *args]
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    watcher, changes = _changes(folders, include, stopping)
    _say(f"reload: watching {', '.join(folders)} with {watcher}")
    child = subprocess.Popen(command, env=env)
    reported = False
    try:
        for changed in changes:
            if stopping:
                break
            if child.poll() is not None and not reported:
                _say(f"reload: the service exited with status {child.returncode}; save to restart")
                reported = True
            if not changed:
                continue
            if not _new_code_works(sorted(changed), args, env):
                continue
            _stop(child)
            _say(f"reload: {_shown(sorted(changed))} changed; restarting")
            child = subprocess.Popen(command, env=env)
            reported = False
    finally:
        status = _stop(child)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status


def _say(message: str) -> None:
    sys.stderr.write(f"tapster: {message}\n")
    sys.stderr.flush()


def _shown(paths: list[str]) -> str:
    names = [os.path.relpath(p) if not os.path.relpath(p).startswith("..") else p for p in paths]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _stop(child: subprocess.Popen[bytes]) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(_STOP_WAIT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return int(child.returncode)


def _new_code_works(changed: list[str], args: list[str], env: dict[str, str]) -> bool:
    """Compile the changed files, then load the plugin and its options in a throwaway child."""
    import traceback

    for path in changed:
        if not path.endswith(".py") or not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as file:
                compile(file.read(), path, "exec")
        except (SyntaxError, ValueError) as error:
            _say(f"reload: not restarted, {_shown([path])} does not compile: {error}")
            sys.stderr.write("".join(traceback.format_exception_only(error)))
            return False
    check = subprocess.run(
        [sys.executable, "-m", "tapster", "--print-config", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        lines = check.stderr.strip().splitlines() or [f"status {check.returncode}"]
        _say(f"reload: not restarted, the new code fails: {lines[0].removeprefix('tapster: ')}")
        for line in lines[1:]:
            sys.stderr.write(line + "\n")
        return False
    return True


def _outermost(folders: list[str]) -> list[str]:
    """The folders, without those inside another one of them."""
    found: list[str] = []
    for folder in sorted({os.path.abspath(f) for f in folders if os.path.isdir(f)}, key=len):
        if not any(folder == f or folder.startswith(f.rstrip(os.sep) + os.sep) for f in found):
            found.append(folder)
    return found


def _wanted(path: str, include: list[str]) -> bool:
    name = os.path.basename(path)
    return name.endswith(".py") or any(
        fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path, pattern) for pattern in include
    )


def _changes(
    folders: list[str], include: list[str], stopping: list[int]
) -> tuple[str, Iterator[set[str]]]:
    """The watcher's name and its changes: a set of paths (empty on a quiet tick)."""
    choice = os.environ.get(WATCHER, "")
    if choice != "poll":
        try:
            import watchfiles
        except ImportError:
            if choice == "watchfiles":
                _say("reload: watchfiles is not installed (pip install 'tapster[reload]'); polling")
        else:
            return "watchfiles", _watchfiles(watchfiles, folders, include)
    return "polling", _poll(folders, include, stopping)


def _watchfiles(module: object, folders: list[str], include: list[str]) -> Iterator[set[str]]:
    def keep(change: object, path: str) -> bool:
        parts = set(path.split(os.sep))
        return _wanted(path, include) and not parts & _SKIPPED

    watch = module.watch  # type: ignore[attr-defined]
    for batch in watch(
        *folders,
        watch_filter=keep,
        debounce=100,
        step=50,
        rust_timeout=int(POLL_INTERVAL * 1000),
        yield_on_timeout=True,
        raise_interrupt=False,
    ):
        yield {path for _, path in batch}


def _poll(folders: list[str], include: list[str], stopping: list[int]) -> Iterator[set[str]]:
    seen = _snapshot(folders, include)
    while not stopping:
        time.sleep(POLL_INTERVAL)
        now = _snapshot(folders, include)
        yield {p for p in seen.keys() | now.keys() if seen.get(p) != now.get(p)}
        seen = now
    yield set()


def _snapshot(folders: list[str], include: list[str]) -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of every watched file below ``folders``."""
    found: dict[str, tuple[int, int]] = {}
    pending = list(folders)
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in _SKIPPED and not entry.name.startswith("."):
                            pending.append(entry.path)
                    elif _wanted(entry.path, include):
                        st = entry.stat()
                        found[entry.path] = (st.st_mtime_ns, st.st_size)
                except OSError:
                    continue
    return found
