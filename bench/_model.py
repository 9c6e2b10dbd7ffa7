"""What a benchmark case is made of: metrics, comparisons and the case itself.

A *case* (one module in ``bench/cases/``) yields *comparisons*. A comparison pairs two
zero-argument callables, one per side (tapster and twistd); each call performs ONE run and
returns a sample, a mapping from metric key to number. The harness calls them interleaved and
reduces the samples to median, min and max per side, plus the tapster/twistd ratio of medians.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench._env import Context

Sample = Mapping[str, float]
"""One run's measurements: metric key -> value. Keys no metric declares go to the JSON only."""


class Unavailable(Exception):  # noqa: N818 - it names a state, not a failure of the harness
    """Raised by a run when one side cannot be measured here (feature not built, tool missing).

    The message is shown in the table instead of a number, so make it one line that says what
    is missing and how to get it.
    """


@dataclass(frozen=True)
class Metric:
    """A measured quantity: its JSON key, the unit shown in the table, and which way is better."""

    key: str
    unit: str
    lower_is_better: bool = True
    label: str = ""

    @property
    def title(self) -> str:
        """The name shown in the table, with an arrow telling which direction is better."""
        arrow = "↓" if self.lower_is_better else "↑"
        return f"{self.label or self.key} ({self.unit}) {arrow}"


WALL_MS = Metric("wall_ms", "ms", label="wall time")
CPU_MS = Metric("cpu_ms", "ms", label="CPU time (user+sys)")
PEAK_RSS_MB = Metric("peak_rss_mb", "MiB", label="peak RSS")
IDLE_RSS_MB = Metric("idle_rss_mb", "MiB", label="idle RSS")
READY_MS = Metric("ready_ms", "ms", label="start-to-ready")
REQUESTS_PER_S = Metric("requests_per_s", "req/s", lower_is_better=False, label="requests")
ROUND_TRIPS_PER_S = Metric("round_trips_per_s", "rt/s", lower_is_better=False, label="round trips")
LOGINS_PER_S = Metric("logins_per_s", "logins/s", lower_is_better=False, label="logins")
MB_PER_S = Metric("mb_per_s", "MB/s", lower_is_better=False, label="throughput")
P50_MS = Metric("p50_ms", "ms", label="p50 latency")
P99_MS = Metric("p99_ms", "ms", label="p99 latency")
STALL_MS = Metric("stall_ms", "ms", label="loop stall")


@dataclass
class Comparison:
    """One line of comparison: the same job done by tapster and by twistd.

    ``runs`` and ``warmup`` default to the case's (then the command line's) values; ``note`` is
    free text shown under the table (for example "N=1000, warm cache"). ``exact`` marks a
    measure that does not vary from run to run (an instruction count): then ``runs`` (default
    1) and ``warmup`` (default 0) hold whatever the command line says.
    """

    label: str
    metrics: Sequence[Metric]
    tapster: Callable[[], Sample]
    twistd: Callable[[], Sample]
    runs: int | None = None
    warmup: int | None = None
    note: str = ""
    exact: bool = False


@dataclass(frozen=True)
class Case:
    """A benchmark case: what ``bench/cases/<name>.py`` exports as ``CASE``.

    ``number`` is the case's number in issue 3's list; ``issue`` the issue that owns it.
    ``comparisons(ctx)`` returns an iterable of comparisons; each is measured as soon as it is
    produced, so a generator may hold resources (servers) open around its ``yield``.
    ``default`` False keeps a case out of a bare ``python -m bench`` run.
    """

    name: str
    title: str
    comparisons: Callable[[Context], Iterable[Comparison]]
    number: int | None = None
    issue: int | None = None
    runs: int = 10
    warmup: int = 1
    default: bool = True
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Planned:
    """A case issue 3 lists that has not landed yet, with the issue that owns it."""

    number: int
    name: str
    title: str
    issue: int


PLANNED: tuple[Planned, ...] = (
    Planned(3, "discovery", "Plugin discovery, N = 0/100/1000, warm and cold cache", 4),
    Planned(4, "echo", "Echo round trips per second, 50 connections, asyncio and uvloop", 5),
    Planned(5, "ready", "Start-to-ready latency and idle RSS of a TCP service", 6),
    Planned(6, "auth", "Logins per second and loop stall during a login flood", 7),
    Planned(7, "web", "web requests/s and p99 (1 KiB, 1 MiB); portforward MB/s", 8),
)
