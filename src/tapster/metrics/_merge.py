"""Metrics sent between processes as JSON, and summed (the supervisor's view of its workers).

A worker sends :func:`snapshot` of its registry; the supervisor keeps the
last one of each worker in a :class:`Sum`. When a worker ends, its counters
and histograms are folded into a retired total, so that a sum never goes
backwards when a worker is replaced; its gauges simply leave the sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tapster.metrics._metric import Family, HistogramValue

__all__ = ["Sum", "from_snapshot", "snapshot"]


def snapshot(families: Iterable[Family]) -> list[list[Any]]:
    """``families`` as JSON-ready lists."""
    return [
        [f.name, f.kind, f.help, list(f.label_names), list(f.buckets), [
            [list(labels), [value[0], value[1]] if isinstance(value, tuple) else value]
            for labels, value in f.series
        ]]
        for f in families
    ]  # fmt: skip


def from_snapshot(data: object) -> list[Family]:
    """The families in ``data`` (from :func:`snapshot`); what is malformed is left out."""
    families: list[Family] = []
    if not isinstance(data, list):
        return families
    for item in data:
        try:
            name, kind, help_text, labels, buckets, rows = item
            series: list[tuple[tuple[str, ...], float | HistogramValue]] = []
            for values, value in rows:
                key = tuple(str(v) for v in values)
                if kind == "histogram":
                    counts, total = value
                    series.append((key, ([float(c) for c in counts], float(total))))
                else:
                    series.append((key, float(value)))
            families.append(
                Family(
                    str(name),
                    str(kind),
                    str(help_text),
                    tuple(str(label) for label in labels),
                    tuple(float(b) for b in buckets),
                    series,
                )
            )
        except (TypeError, ValueError):
            continue
    return families


def _add(a: float | HistogramValue, b: float | HistogramValue) -> float | HistogramValue:
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a[0]) != len(b[0]):
            return a
        return ([x + y for x, y in zip(a[0], b[0], strict=True)], a[1] + b[1])
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a
    return a + b


class _Totals:
    """Families by name, each with values by label set, added up."""

    def __init__(self) -> None:
        self.heads: dict[str, Family] = {}
        self.values: dict[str, dict[tuple[str, ...], float | HistogramValue]] = {}

    def add(self, families: Iterable[Family], kinds: tuple[str, ...]) -> None:
        for family in families:
            if family.kind not in kinds:
                continue
            head = self.heads.setdefault(family.name, family)
            if head.kind != family.kind or head.label_names != family.label_names:
                continue
            values = self.values.setdefault(family.name, {})
            for labels, value in family.series:
                old = values.get(labels)
                values[labels] = value if old is None else _add(old, value)

    def families(self) -> list[Family]:
        return [
            head._replace(series=list(self.values.get(name, {}).items()))
            for name, head in self.heads.items()
        ]


_ALL = ("counter", "gauge", "histogram")
_MONOTONIC = ("counter", "histogram")


class Sum:
    """The sum of several processes' metrics, monotonic across their replacement."""

    def __init__(self, skip: tuple[str, ...] = ("process_",)) -> None:
        #: Family name prefixes left out (each process's own figures).
        self.skip = skip
        self._last: dict[object, list[Family]] = {}
        self._retired = _Totals()

    def update(self, source: object, families: list[Family]) -> None:
        """The latest metrics of ``source`` (a worker)."""
        self._last[source] = [f for f in families if not f.name.startswith(self.skip)]

    def retire(self, source: object) -> None:
        """``source`` is gone: keep its counters and histograms in the sum."""
        last = self._last.pop(source, None)
        if last is not None:
            self._retired.add(last, _MONOTONIC)

    def families(self) -> list[Family]:
        """The sum now: retired counters plus every live source's last metrics."""
        totals = _Totals()
        totals.add(self._retired.families(), _ALL)
        for families in list(self._last.values()):
            totals.add(families, _ALL)
        return totals.families()
