"""Watching the event loop turn: its lag, and stalls caught while they last.

:class:`LoopWatch` puts a small callback on the loop (every
:data:`~tapster.loopwatch._watch.TICK` seconds) that notes when the loop last
turned and how late the callback ran (the lag histogram); with a stall
threshold, a watchdog thread notices when the loop has not turned for that
long and logs where it is stuck (``--loop-stall``, docs/operations.md).
"""

from __future__ import annotations

from tapster.loopwatch._watch import TICK, LoopWatch

__all__ = ["TICK", "LoopWatch"]
