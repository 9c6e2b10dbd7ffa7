"""The shutdown budget: one deadline shared by every ``stop`` in a tree.

``shutdown(root, timeout)`` sets a deadline in a context variable; every stop
that runs below it (children are stopped in tasks, which copy the context) can
ask :func:`remaining_budget` how long it may still take. A stop that overruns
is cancelled and named in the log, and the next one gets what is left.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable

logger = logging.getLogger("tapster.service")

#: Loop time by which the current shutdown must be over (None: no shutdown running).
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "tapster_shutdown_deadline", default=None
)
#: How many collections deep the current stop is; deeper stops are cut a little
#: earlier so the innermost overrunning service is the one named in the log.
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("tapster_stop_depth", default=0)

#: Seconds by which each nesting level is cut before its parent's deadline.
_LEVEL_MARGIN = 0.02
#: Seconds a cancelled stop gets to unwind before we stop waiting for it.
_CANCEL_GRACE = 1.0


def remaining_budget() -> float | None:
    """Seconds left in the current shutdown budget, or None outside ``shutdown``.

    Services that wait during ``stop`` (draining connections, finishing a
    timer call) use this to leave before they would be cancelled.
    """
    deadline = _deadline.get()
    if deadline is None:
        return None
    return max(0.0, _own_deadline(deadline) - asyncio.get_running_loop().time())


def _own_deadline(deadline: float) -> float:
    return deadline - _LEVEL_MARGIN * min(_depth.get(), 10)


async def run_stop(label: str, stop: Awaitable[None]) -> None:
    """Run one child's ``stop`` inside whatever budget is left.

    Outside a shutdown the stop is awaited without a time limit. Inside one it
    is cancelled when the budget is spent; the overrun is logged with the
    service's ``label`` and not raised, so the remaining services still stop.
    Errors raised by the stop itself are logged (not raised) in both cases:
    one broken service must not keep the others running.
    """
    deadline = _deadline.get()
    token = _depth.set(_depth.get() + 1)
    try:
        task = asyncio.ensure_future(stop)
    finally:
        _depth.reset(token)
    timeout: float | None = None
    if deadline is not None:
        loop = asyncio.get_running_loop()
        timeout = max(0.0, _own_deadline(deadline) - _LEVEL_MARGIN - loop.time())
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        logger.warning("service '%s' did not stop within the shutdown budget; cancelled it", label)
        await asyncio.wait({task}, timeout=_CANCEL_GRACE)
        if not task.done():
            logger.error("service '%s' ignored cancellation; leaving it behind", label)
            return
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        logger.error("service '%s' failed while stopping: %s", label, exc, exc_info=exc)


async def shutdown(root: object, timeout: float) -> None:
    """Stop the service tree under ``root`` within ``timeout`` seconds in total.

    Every ``stop`` in the tree gets the part of the budget that is still left;
    what has not finished when it runs out is cancelled and named in the log
    (logger ``tapster.service``). Never raises because a service misbehaved,
    and never waits much longer than ``timeout``.
    """
    from tapster.service._service import Service

    if not isinstance(root, Service):
        raise TypeError(f"shutdown() needs a Service, not {type(root).__name__}")
    loop = asyncio.get_running_loop()
    token = _deadline.set(loop.time() + max(0.0, timeout))
    try:
        await run_stop(root.label, root.stop())
    finally:
        _deadline.reset(token)
