"""When to recycle a worker: resident memory with hysteresis, age with jitter.

Sans-IO except :func:`resident_memory`: the policies are told samples and
times and answer "recycle now?", so they are tested without processes.

* Memory: a worker is due when its resident set stayed above its limit for
  :data:`MEMORY_SAMPLES` samples in a row (one sample every
  :data:`MEMORY_INTERVAL` seconds), so a brief peak (one large request) does
  not recycle it. Each worker's limit is the configured one lowered by up to
  :data:`JITTER` at random, so workers that grow alike are not due together.
* Age: a worker is due after the configured age plus up to :data:`JITTER` of
  it, at random, for the same reason.

The supervisor recycles one worker at a time whatever these say.
"""

from __future__ import annotations

import os
import random

__all__ = [
    "JITTER",
    "MEMORY_INTERVAL",
    "MEMORY_SAMPLES",
    "AgeLimit",
    "MemoryLimit",
    "resident_memory",
]

#: Seconds between two memory samples of a worker.
MEMORY_INTERVAL = 0.5
#: Samples in a row above the limit that make a worker due.
MEMORY_SAMPLES = 3
#: The random share by which limits are spread between workers.
JITTER = 0.1

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class MemoryLimit:
    """One worker's memory limit, with hysteresis."""

    def __init__(self, limit: int, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self.limit = int(limit * (1 - rng.uniform(0, JITTER / 2)))
        self.over = 0

    def due(self, rss: int) -> bool:
        """Record one sample; True once the limit was exceeded long enough."""
        self.over = self.over + 1 if rss > self.limit else 0
        return self.over >= MEMORY_SAMPLES


class AgeLimit:
    """One worker's age limit, with jitter."""

    def __init__(self, started: float, age: float, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self.deadline = started + age * (1 + rng.uniform(0, JITTER))

    def due(self, now: float) -> bool:
        """True once the worker is old enough to recycle."""
        return now >= self.deadline


def resident_memory(pid: int) -> int | None:
    """The resident set of process ``pid`` in bytes (``/proc/PID/statm``), or None."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None
