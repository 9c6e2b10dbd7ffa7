"""Families written as Prometheus text (format 0.0.4) or OpenMetrics 1.0.

Written here rather than by ``prometheus_client`` (30 ms and 85 modules to
import); the tests check every line with that library's own parsers. The two
formats differ in small ways: a counter's ``# TYPE`` names ``NAME_total`` in
0.0.4 and ``NAME`` in OpenMetrics, OpenMetrics escapes quotes in help text
and ends with ``# EOF``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from tapster.metrics._metric import Family

__all__ = ["OPENMETRICS_TYPE", "TEXT_TYPE", "expose", "wants_openmetrics"]

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def wants_openmetrics(accept: str) -> bool:
    """True when an ``Accept`` header asks for OpenMetrics (what Prometheus sends first)."""
    for part in accept.split(","):
        kind, _, params = part.partition(";")
        if kind.strip().lower() != "application/openmetrics-text":
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return f"{int(value)}.0"
    return repr(float(value))


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    pairs = [f'{n}="{_label_value(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def expose(families: Iterable[Family], openmetrics: bool = False) -> bytes:
    """The families in one format, as the body of a ``/metrics`` answer."""
    out: list[str] = []
    add = out.append
    for family in families:
        name = family.name
        help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        if openmetrics:
            help_text = help_text.replace('"', '\\"')
        typed = name + "_total" if family.kind == "counter" and not openmetrics else name
        add(f"# HELP {typed} {help_text}\n")
        add(f"# TYPE {typed} {family.kind}\n")
        names = family.label_names
        if family.kind == "histogram":
            bounds = [*(_number(b) for b in family.buckets), "+Inf"]
            for values, value in family.series:
                assert isinstance(value, tuple)
                counts, total = value
                running = 0.0
                for bound, count in zip(bounds, counts, strict=True):
                    running += count
                    labels = _labels(names, values, f'le="{bound}"')
                    add(f"{name}_bucket{labels} {_number(running)}\n")
                labels = _labels(names, values)
                add(f"{name}_count{labels} {_number(running)}\n")
                add(f"{name}_sum{labels} {_number(total)}\n")
            continue
        suffix = "_total" if family.kind == "counter" else ""
        for values, value in family.series:
            assert not isinstance(value, tuple)
            add(f"{name}{suffix}{_labels(names, values)} {_number(value)}\n")
    if openmetrics:
        add("# EOF\n")
    return "".join(out).encode("utf-8")
