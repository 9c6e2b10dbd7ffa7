"""``web``'s metrics: requests by method and status class, their duration, bytes sent.

Counted where the access log line is written, once per response: a dict
lookup for the (method, status class) series, then a few number updates.
Methods outside the usual set are counted as ``other``, so a client cannot
make the label set grow.
"""

from __future__ import annotations

import time

from tapster.metrics import CounterSeries, HistogramSeries, counter, histogram

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._http import Request

__all__ = ["count_rejected", "count_request"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

_REQUESTS = counter(
    "tapster_web_requests",
    "HTTP requests answered, by method and status class (1xx to 5xx).",
    labels=("method", "status"),
)
_DURATION = histogram(
    "tapster_web_request_duration_seconds",
    "Seconds from a request's head received to its response written, by method.",
    labels=("method",),
)
_SENT = counter("tapster_web_response_body_bytes", "Bytes of response bodies sent.")
_SENT_SERIES = _SENT.labels()

_series: dict[tuple[str, int], tuple[CounterSeries, HistogramSeries]] = {}


def _for(method: str, status: int) -> tuple[CounterSeries, HistogramSeries]:
    key = (method, status)
    found = _series.get(key)
    if found is None:
        name = method if method in _METHODS else "other"
        group = _CLASSES[min(max(status // 100, 1), 5) - 1]
        found = _series[key] = (_REQUESTS.labels(name, group), _DURATION.labels(name))
    return found


def count_request(req: Request, status: int, length: int) -> None:
    """One response to ``req``: counted, timed, its body's bytes added."""
    requests, duration = _for(req.method, status)
    requests.value += 1
    duration.observe(time.monotonic() - req.started)
    _SENT_SERIES.value += length


def count_rejected(status: int, length: int) -> None:
    """A request refused before it was parsed (method ``other``, no duration)."""
    requests, _ = _for("", status)
    requests.value += 1
    _SENT_SERIES.value += length
