"""Issue 18: what configuration costs a run, and ``--reload``'s save-to-new-answer time.

* **save to new answer** with ``tapster --reload``, each watcher (``poll``, ``watchfiles``):
  a drop-in plugin answers one line to every connection; each run rewrites the plugin with a
  new word and times the first connection that gets it. The reloader compiles the file, starts
  the next child on the same listening socket and stops the old one once the new one is ready,
  so the figure is the watcher's delay plus one start of the child. twistd has no reload.
* **instructions**, counted by callgrind (load-independent): ``tapster --help`` (``.pyc``
  files used), and an echo server's launch to first answer, with no config file and no
  ``TAPSTER_`` variable: the cost the sources add to a plain run.
"""

from __future__ import annotations

import importlib.util
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench import (
    Case,
    Comparison,
    Context,
    Metric,
    Unavailable,
    bundled_tapster_plugins,
    free_port,
    stop_process,
)
from bench.cases.ready import INSTRUCTIONS_M, _count_run

SAVE_TO_ANSWER_MS = Metric("save_to_answer_ms", "ms", label="save to new answer")

PLUGIN = """
from tapster.internet import TCPServer
from tapster.service import ServiceMaker
from tapster.usage import Options, port

WORD = "{word}"


class GreetOptions(Options):
    parameters = [("port", "p", 0, "The port.", port)]


class GreetMaker(ServiceMaker):
    tapname = "bench-greet"
    description = "Answers one word."
    options = GreetOptions

    def make_service(self, options):
        async def handle(reader, writer):
            writer.write(WORD.encode() + b"\\n")
            await writer.drain()
            writer.close()

        return TCPServer(options["port"], handle, interface="127.0.0.1")


maker = GreetMaker()
"""


def _answer(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        return conn.makefile("rb").readline().decode().strip()


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Save-to-answer with each watcher, then the instruction counts."""
    root = Path(ctx.tmpdir) / "reload-app"
    plugin = root / "tapster" / "plugins" / "bench_greet.py"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(PLUGIN.format(word="w0"))

    def no_reload() -> dict[str, float]:
        raise Unavailable("twistd has no --reload")

    for watcher in ("poll", "watchfiles"):
        if watcher == "watchfiles" and importlib.util.find_spec("watchfiles") is None:
            continue  # the extra is not in this interpreter: the line is left out
        plugin.write_text(PLUGIN.format(word="w0"))
        port = free_port()
        env = ctx.env({"TAPSTER_RELOAD_WATCHER": watcher})
        argv = [ctx.tapster_bin("tapster"), "--app-dir", str(root), "--reload"]
        proc = subprocess.Popen(
            [*argv, "bench-greet", "--port", str(port)],
            env=env,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for(port, "w0", proc)
            time.sleep(1.0)  # the watcher's first look
            count = [0]

            def save(
                count: list[int] = count,
                port: int = port,
                proc: subprocess.Popen[bytes] = proc,
            ) -> dict[str, float]:
                count[0] += 1
                word = f"w{count[0]}"
                plugin.write_text(PLUGIN.format(word=word))
                start = time.perf_counter()
                _wait_for(port, word, proc)
                elapsed = (time.perf_counter() - start) * 1000.0
                # The old child gone, then a random phase against the poller's period.
                time.sleep(0.7 + random.uniform(0.0, 0.5))
                return {"save_to_answer_ms": elapsed}

            yield Comparison(
                f"--reload, {watcher}: save to new answer",
                (SAVE_TO_ANSWER_MS,),
                tapster=save,
                twistd=no_reload,
                note=f"TAPSTER_RELOAD_WATCHER={watcher}; rewrite the plugin, poll every 5 ms",
            )
        finally:
            stop_process(proc)

    help_env = {k: v for k, v in ctx.env().items() if k != "PYTHONDONTWRITEBYTECODE"}
    help_env["COLUMNS"] = "80"

    def count_help() -> dict[str, float]:
        argv = [ctx.tapster_bin("tapster"), "--help"]
        _count_run(argv, None, help_env, Path(ctx.tmpdir))  # .pyc files and caches warm
        return _count_run(argv, None, help_env, Path(ctx.tmpdir))

    def no_count() -> dict[str, float]:
        raise Unavailable("tapster's own figure (before and after: docs/benchmarks.md)")

    yield Comparison(
        "instructions: tapster --help (no config, no variables)",
        (Metric("instructions_m", "M", label="instructions"),),
        tapster=count_help,
        twistd=no_count,
        exact=True,
        note="callgrind, .pyc files used, second run",
    )

    echo_root = bundled_tapster_plugins(Path(ctx.tmpdir) / "echo-side", "bench_echo")

    def count_ready() -> dict[str, float]:
        port = free_port()
        argv = [
            ctx.tapster_bin("tapster"),
            *("--app-dir", str(echo_root), "--loop", "asyncio", "bench-echo"),
            *("--port", str(port)),
        ]
        return _count_run(argv, port, ctx.env(), echo_root)

    yield Comparison(
        "instructions to ready: tapster echo (no config, no variables)",
        (INSTRUCTIONS_M,),
        tapster=count_ready,
        twistd=no_count,
        exact=True,
        note="callgrind, launch to first echo",
    )


def _wait_for(port: int, word: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _answer(port) == word:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"tapster --reload exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"never answered {word!r}")
        time.sleep(0.005)


CASE = Case(
    name="config",
    issue=18,
    title="Configuration: --reload save to new answer; --help and start-to-ready instructions",
    comparisons=comparisons,
    runs=10,
    warmup=1,
)
