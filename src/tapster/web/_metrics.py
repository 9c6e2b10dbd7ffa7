"""``web``'s metrics: requests by method and status class, their duration, bytes sent.

Counted where the access log line is written, once per response, whoever
answered (files, WSGI, ASGI, a refusal), and also for a response cut short
after its head went out: a dict lookup for the (method, status) pair's series,
then a few number updates.
Methods outside the usual set are counted as ``other``, so a client cannot
make the label set grow.
"""

from __future__ import annotations

from bisect import bisect_left as _bisect_left
from time import monotonic as _monotonic

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
    found = _series[(method, status)] = (
        _REQUESTS.labels(method if method in _METHODS else "other", _class(status)),
        _DURATION.labels(method if method in _METHODS else "other"),
    )
    return found


def _class(status: int) -> str:
    return _CLASSES[min(max(status // 100, 1), 5) - 1]


def count_request(req: Request, status: int, length: int) -> None:
    """One response to ``req``: counted, timed, its body's bytes added.

    The hot path of every response: one dict lookup, then the series' numbers
    updated in place (the histogram's ``observe`` inlined: about 250 ns in all).
    """
    found = _series.get((req.method, status)) or _for(req.method, status)
    found[0].value += 1
    duration = found[1]
    elapsed = _monotonic() - req.started
    duration.counts[_bisect_left(duration.bounds, elapsed)] += 1
    duration.sum += elapsed
    _SENT_SERIES.value += length


def count_rejected(status: int, length: int) -> None:
    """A request refused before it was parsed (method ``other``, no duration)."""
    found = _series.get(("", status)) or _for("", status)
    found[0].value += 1
    _SENT_SERIES.value += length
