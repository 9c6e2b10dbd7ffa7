"""The ASGI lifespan protocol: the application's start-up before the server listens,
its shut-down after the connections have drained.

One task runs the application with a ``lifespan`` scope for the whole life of the
server; ``startup`` and ``shutdown`` hand it the two events and wait for its
answers. With ``--lifespan auto`` an application that raises before answering
the start-up event (or returns) is taken not to support lifespan and runs without
it, as other servers do; with ``on`` that is a start-up failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ._asgi import ASGI_VERSION, AsgiApp, Message

log = logging.getLogger("tapster.web")


class LifespanError(ValueError):
    """The application's start-up failed: the server must not start."""


class Lifespan:
    """Runs one application's lifespan; ``state`` is shared with every request's scope."""

    def __init__(self, app: AsgiApp, state: dict[str, Any], mode: str = "auto") -> None:
        self._app = app
        self._state = state
        self._mode = mode
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._answer: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        #: Whether the application took the start-up event (and so gets the shut-down one).
        self.running = False

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer; raise ``LifespanError`` on failure."""
        if self._mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self._state}
        self._task = loop.create_task(self._run(scope), name="ASGI lifespan")
        await self._events.put({"type": "lifespan.startup"})
        answer = await self._answer
        kind = answer.get("type")
        if kind == "lifespan.startup.complete":
            self.running = True
            return
        if kind == "lifespan.startup.failed":
            raise LifespanError(f"the application's start-up failed: {_one_line(answer)}")
        # The application raised or returned without answering.
        error = answer.get("error")
        if self._mode == "on":
            what = f"{type(error).__name__}: {error}" if error is not None else "it returned"
            raise LifespanError(f"the application does not support lifespan events ({what})")
        log.info("The ASGI application does not support lifespan events; running without them")

    async def shutdown(self, timeout: float | None) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer, at most ``timeout`` seconds."""
        task = self._task
        if not self.running or task is None:
            return
        self.running = False
        self._answer = asyncio.get_running_loop().create_future()
        await self._events.put({"type": "lifespan.shutdown"})
        try:
            answer = await asyncio.wait_for(asyncio.shield(self._answer), timeout)
        except TimeoutError:
            log.warning("The ASGI application's shut-down took too long; cancelled it")
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            return
        if answer.get("type") == "lifespan.shutdown.failed":
            log.error("The ASGI application's shut-down failed: %s", _one_line(answer))
        elif answer.get("type") != "lifespan.shutdown.complete":
            log.error("The ASGI application's lifespan ended during shut-down")
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 1.0)

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self._app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self.running:
                log.error("The ASGI application's lifespan failed", exc_info=exc)
            else:  # start-up: said in one line by ``startup``; the details at debug level
                log.debug("The ASGI application's lifespan raised", exc_info=exc)
            self._reply({"type": "", "error": exc})
            return
        self._reply({"type": ""})

    async def _receive(self) -> Message:
        return await self._events.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            raise RuntimeError(f"unexpected ASGI message {kind!r} in lifespan")
        self._reply(dict(message))

    def _reply(self, message: Message) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(message)


def _one_line(message: Message) -> str:
    """The last line of an application's failure message (often a whole traceback)."""
    text = str(message.get("message") or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"
