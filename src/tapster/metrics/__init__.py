"""Metrics any service can keep, read by the admin endpoint's ``/metrics``.

::

    from tapster.metrics import counter, histogram

    JOBS = counter("myapp_jobs", "Jobs done.", labels=("queue",))
    DONE = JOBS.labels("mail")        # keep the series you update often
    DONE.inc()                        # one attribute update

Counters (``NAME_total`` when written), gauges and histograms live in one
process-wide :data:`REGISTRY`; ``counter()``, ``gauge()`` and ``histogram()``
return the metric of that name when it exists already (a module imported
again, two services sharing it). With ``--workers`` the supervisor sums every
worker's metrics (docs/operations.md). Nothing here is imported by
``tapster --help``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tapster.metrics._exposition import OPENMETRICS_TYPE, TEXT_TYPE, expose, wants_openmetrics
from tapster.metrics._metric import (
    DEFAULT_BUCKETS,
    Counter,
    CounterSeries,
    Family,
    Gauge,
    GaugeSeries,
    Histogram,
    HistogramSeries,
    Registry,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "OPENMETRICS_TYPE",
    "REGISTRY",
    "TEXT_TYPE",
    "Counter",
    "CounterSeries",
    "Family",
    "Gauge",
    "GaugeSeries",
    "Histogram",
    "HistogramSeries",
    "Registry",
    "counter",
    "expose",
    "gauge",
    "histogram",
    "wants_openmetrics",
]

#: The process's metrics.
REGISTRY = Registry()


def _existing(cls: type[Any], name: str, labels: Sequence[str]) -> Any:
    metric = REGISTRY.get(name.removesuffix("_total") if cls is Counter else name)
    if metric is None:
        return None
    if type(metric) is not cls or metric.label_names != tuple(labels):
        raise ValueError(
            f"a metric named {name!r} exists already as a {metric.kind} "
            f"with labels ({', '.join(metric.label_names)})"
        )
    return metric


def counter(name: str, help: str, labels: Sequence[str] = ()) -> Counter:
    """The counter ``name`` of :data:`REGISTRY` (made on first use)."""
    found = _existing(Counter, name, labels)
    return found if found is not None else Counter(name, help, labels, REGISTRY)


def gauge(name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
    """The gauge ``name`` of :data:`REGISTRY` (made on first use)."""
    found = _existing(Gauge, name, labels)
    return found if found is not None else Gauge(name, help, labels, REGISTRY)


def histogram(
    name: str, help: str, labels: Sequence[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS
) -> Histogram:
    """The histogram ``name`` of :data:`REGISTRY` (made on first use)."""
    found = _existing(Histogram, name, labels)
    return found if found is not None else Histogram(name, help, labels, REGISTRY, buckets)
