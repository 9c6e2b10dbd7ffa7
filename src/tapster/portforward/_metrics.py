"""``portforward``'s metrics, read from each running forwarder's counters at a scrape.

The forwarders count anyway (``ForwardStats``, logged at stop); a collector
turns the running ones into families, so forwarding pays nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator

from tapster.metrics import REGISTRY, Family

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.portforward._service import PortForwardService

__all__ = ["unwatch", "watch"]

_running: dict[PortForwardService, None] = {}


def _families() -> Iterator[Family]:
    services = [(", ".join(s.listening()) or "-", s.stats) for s in list(_running)]
    yield Family(
        "tapster_portforward_bytes",
        "counter",
        "Bytes forwarded, per listener and direction (to_destination, from_destination).",
        ("listener", "direction"),
        (),
        [
            series
            for where, stats in services
            for series in (
                ((where, "to_destination"), float(stats.bytes_to_dest)),
                ((where, "from_destination"), float(stats.bytes_from_dest)),
            )
        ],
    )
    yield Family(
        "tapster_portforward_connections",
        "counter",
        "Connections accepted and forwarded (or attempted), per listener.",
        ("listener",),
        (),
        [((where,), float(stats.connections)) for where, stats in services],
    )
    yield Family(
        "tapster_portforward_connections_open",
        "gauge",
        "Forwarded connections open now, per listener.",
        ("listener",),
        (),
        [((where,), float(stats.active)) for where, stats in services],
    )


def watch(service: PortForwardService) -> None:
    """Report ``service``'s counters from now on."""
    if not _running:
        REGISTRY.add_collector(_families)
    _running[service] = None


def unwatch(service: PortForwardService) -> None:
    """Stop reporting ``service``."""
    _running.pop(service, None)
    if not _running:
        REGISTRY.remove_collector(_families)
