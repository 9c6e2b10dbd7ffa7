"""Counters, gauges and histograms with labels, kept as plain numbers.

The hot path is what a request pays: ``series.inc()`` is one attribute update,
``histogram series.observe(v)`` a bisect and three. Label lookups cost a dict
access, so code that counts often keeps the series it uses
(``OK = REQUESTS.labels("GET", "2xx")``) and updates that. Nothing here locks:
updates happen on one event loop, and a scrape from another thread reads
numbers that are at worst one update old.

A metric is read as a :class:`Family` (its name, kind, help, label names and
one value per label set), the one shape the exposition writers
(``_exposition``) and the workers' merge (``_merge``) know.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = [
    "DEFAULT_BUCKETS",
    "Counter",
    "Family",
    "Gauge",
    "Histogram",
    "HistogramValue",
    "Registry",
]

#: Seconds: from a fast request to a slow one.
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: A histogram series: counts per bucket (not cumulated; the last is +Inf), and the sum.
HistogramValue = tuple[list[float], float]


class Family(NamedTuple):
    """One metric as read at a scrape: what the exposition writes."""

    name: str
    kind: str  # "counter", "gauge" or "histogram"
    help: str
    label_names: tuple[str, ...]
    #: The upper bounds of a histogram's buckets (without +Inf); empty otherwise.
    buckets: tuple[float, ...]
    #: (label values, value): a float, or a :data:`HistogramValue` for a histogram.
    series: list[tuple[tuple[str, ...], float | HistogramValue]]


def _check_name(name: str) -> str:
    if not name or not all(c.isascii() and (c.isalnum() or c in "_:") for c in name):
        raise ValueError(f"metric name {name!r}: use ASCII letters, digits, '_' and ':'")
    if name[0].isdigit():
        raise ValueError(f"metric name {name!r} must not start with a digit")
    return name


_S = TypeVar("_S")


class _Metric(Generic[_S]):
    """What every kind shares: names, label checks, and a series per label set."""

    kind = ""

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        registry: Registry | None = None,
    ) -> None:
        self.name = _check_name(name)
        self.help = help
        self.label_names = tuple(_check_name(label) for label in labels)
        if "le" in self.label_names:
            raise ValueError(f"metric {name!r}: 'le' is reserved for histogram buckets")
        self._series: dict[tuple[str, ...], _S] = {}
        if not self.label_names:
            self._series[()] = self._new_series()
        if registry is not None:
            registry.register(self)

    def _new_series(self) -> _S:
        raise NotImplementedError

    def labels(self, *values: str) -> _S:
        """The series of these label values (made on first use)."""
        key = values if values in self._series else self._key(values)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._new_series()
        return series

    def remove(self, *values: str) -> None:
        """Forget the series of these label values (a listener that closed)."""
        self._series.pop(tuple(values), None)

    def _key(self, values: tuple[str, ...]) -> tuple[str, ...]:
        if len(values) != len(self.label_names):
            raise ValueError(
                f"metric {self.name!r} takes {len(self.label_names)} label values "
                f"({', '.join(self.label_names) or 'none'}), not {len(values)}"
            )
        return tuple(str(v) for v in values)

    def family(self) -> Family:
        """The metric as read now."""
        raise NotImplementedError


class CounterSeries:
    """One counter value; only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (0 or more)."""
        self.value += amount


class Counter(_Metric[CounterSeries]):
    """A count that only goes up (requests, bytes, restarts). Written ``NAME_total``."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        registry: Registry | None = None,
    ) -> None:
        super().__init__(name.removesuffix("_total"), help, labels, registry)

    def _new_series(self) -> CounterSeries:
        return CounterSeries()

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` to the counter without labels."""
        self.labels().value += amount

    def family(self) -> Family:
        """The metric as read now."""
        return Family(
            self.name,
            self.kind,
            self.help,
            self.label_names,
            (),
            [(k, s.value) for k, s in list(self._series.items())],
        )


class GaugeSeries:
    """One gauge value: set, or read from a function at each scrape."""

    __slots__ = ("function", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.function: Callable[[], float] | None = None

    def set(self, value: float) -> None:
        """Set the value."""
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self.value -= amount

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from ``function()`` at each scrape (it must be cheap and not block)."""
        self.function = function

    def read(self) -> float:
        """The value now."""
        function = self.function
        if function is None:
            return self.value
        try:
            return float(function())
        except Exception:
            return math.nan


class Gauge(_Metric[GaugeSeries]):
    """A value that goes up and down (open connections, memory)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        registry: Registry | None = None,
    ) -> None:
        super().__init__(name, help, labels, registry)

    def _new_series(self) -> GaugeSeries:
        return GaugeSeries()

    def set(self, value: float) -> None:
        """Set the gauge without labels."""
        self.labels().value = value

    def inc(self, amount: float = 1.0) -> None:
        """Add to the gauge without labels."""
        self.labels().value += amount

    def dec(self, amount: float = 1.0) -> None:
        """Subtract from the gauge without labels."""
        self.labels().value -= amount

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the gauge without labels from ``function()`` at each scrape."""
        self.labels().function = function

    def family(self) -> Family:
        """The metric as read now."""
        return Family(
            self.name,
            self.kind,
            self.help,
            self.label_names,
            (),
            [(k, s.read()) for k, s in list(self._series.items())],
        )


class HistogramSeries:
    """One histogram: a count per bucket, the sum of what was observed."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in its bucket."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class Histogram(_Metric[HistogramSeries]):
    """How values spread over buckets (request durations, loop lag)."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        registry: Registry | None = None,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
    ) -> None:
        bounds = tuple(sorted(float(b) for b in buckets if b != math.inf))
        if not bounds or any(math.isnan(b) for b in bounds) or len(set(bounds)) != len(bounds):
            raise ValueError(f"histogram {name!r}: give distinct bucket bounds")
        self.buckets = bounds
        super().__init__(name, help, labels, registry)

    def _new_series(self) -> HistogramSeries:
        return HistogramSeries(self.buckets)

    def observe(self, value: float) -> None:
        """Observe ``value`` in the histogram without labels."""
        self.labels().observe(value)

    def family(self) -> Family:
        """The metric as read now."""
        series: list[tuple[tuple[str, ...], float | HistogramValue]] = []
        for key, s in list(self._series.items()):
            series.append((key, ([float(c) for c in s.counts], s.sum)))
        return Family(self.name, self.kind, self.help, self.label_names, self.buckets, series)


#: Something that returns families at each scrape (process figures, a merge of workers).
Collector = Callable[[], Iterable[Family]]


class Registry:
    """The metrics of one process, read together at a scrape."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric[Any]] = {}
        self._collectors: list[Collector] = []

    def register(self, metric: _Metric[Any]) -> None:
        """Add ``metric``; a second metric of the same name is refused."""
        if metric.name in self._metrics:
            raise ValueError(f"a metric named {metric.name!r} is registered already")
        self._metrics[metric.name] = metric

    def unregister(self, metric: _Metric[Any]) -> None:
        """Remove ``metric``."""
        if self._metrics.get(metric.name) is metric:
            del self._metrics[metric.name]

    def get(self, name: str) -> _Metric[Any] | None:
        """The metric called ``name`` (without ``_total``), or None."""
        return self._metrics.get(name)

    def add_collector(self, collector: Collector) -> None:
        """Call ``collector()`` at each scrape for more families."""
        self._collectors.append(collector)

    def remove_collector(self, collector: Collector) -> None:
        """Stop calling ``collector``."""
        if collector in self._collectors:
            self._collectors.remove(collector)

    def collect(self) -> list[Family]:
        """Every family, read now."""
        families = [metric.family() for metric in list(self._metrics.values())]
        for collector in list(self._collectors):
            families.extend(collector())
        return families
