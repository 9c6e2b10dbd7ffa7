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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.service._service import Service

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


async def run_stop(service: Service, label: str | None = None) -> None:
    """Stop one service (a child, or the root) inside whatever budget is left.

    Outside a shutdown the stop is awaited without a time limit. Inside one,
    a service's stop is cancelled when the budget is spent, and the overrun
    is logged with the service's label and not raised, so that the remaining
    services still stop (each of those gets a last moment to close its
    sockets). Cancelled stops share one grace period to unwind, which ends
    ``_CANCEL_GRACE`` seconds after the deadline; a collection is only cut at
    that point, so that its children are the ones named and cancelled first.
    Errors raised by a stop are logged (not raised) in every case: one broken
    service must not keep the others running. ``label`` overrides the name
    used in the log (for a service already removed from its tree).
    """
    from tapster.service._service import MultiService

    label = label or service.label
    deadline = _deadline.get()
    depth = _depth.get() + 1
    token = _depth.set(depth)
    try:
        task = asyncio.ensure_future(service.stop())
    finally:
        _depth.reset(token)
    timeout: float | None = None
    cutoff = 0.0
    if deadline is not None:
        now = asyncio.get_running_loop().time()
        level = _LEVEL_MARGIN * min(depth, 10)
        cutoff = deadline + _CANCEL_GRACE - level
        soft = cutoff if isinstance(service, MultiService) else deadline - level
        timeout = max(0.0, soft - now)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        logger.warning("service '%s' did not stop within the shutdown budget; cancelled it", label)
        grace = max(_LEVEL_MARGIN, cutoff - asyncio.get_running_loop().time())
        await asyncio.wait({task}, timeout=grace)
        if not task.done():
            logger.error("service '%s' ignored cancellation; leaving it behind", label)
            return
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        logger.error("service '%s' failed while stopping: %s", label, exc, exc_info=exc)


async def shutdown(root: Service, timeout: float) -> None:
    """Stop the service tree under ``root`` within ``timeout`` seconds in total.

    Every ``stop`` in the tree gets the part of the budget that is still left;
    what has not finished when it runs out is cancelled and named in the log
    (logger ``tapster.service``). Never raises because a service misbehaved,
    and never waits much longer than ``timeout``.
    """
    from tapster.service._service import Service

    if not isinstance(root, Service):  # callers without type checking
        raise TypeError(f"shutdown() needs a Service, not {type(root).__name__}")
    loop = asyncio.get_running_loop()
    token = _deadline.set(loop.time() + max(0.0, timeout))
    try:
        await run_stop(root)
    finally:
        _deadline.reset(token)
