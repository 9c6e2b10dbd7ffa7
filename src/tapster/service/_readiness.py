"""Asking every service of a tree whether it is ready, within a timeout (``/readyz``)."""

from __future__ import annotations

import asyncio

from tapster.service._service import MultiService, Service

__all__ = ["READINESS_TIMEOUT", "not_ready"]

#: Seconds each service's ``readiness()`` may take; less than the 1 s Kubernetes
#: gives a probe by default, so a slow check is reported rather than timed out.
READINESS_TIMEOUT = 0.8


def _walk(service: Service) -> list[Service]:
    found = [service]
    if isinstance(service, MultiService):
        for child in service:
            found.extend(_walk(child))
    return found


async def _ask(service: Service, timeout: float) -> str | None:
    label = service.label
    if not service.running:
        return f"service {label!r} is not running"
    try:
        reason = await asyncio.wait_for(service.readiness(), timeout)
    except TimeoutError:
        return f"service {label!r}: its readiness check did not answer within {timeout:g} s"
    except Exception as exc:
        text = " ".join(str(exc).split())
        what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return f"service {label!r}: its readiness check failed: {what}"
    return f"service {label!r}: {reason}" if reason else None


async def not_ready(root: Service, timeout: float = READINESS_TIMEOUT) -> list[str]:
    """Why ``root``'s tree is not ready (each service's reason, in tree order); [] when it is."""
    answers = await asyncio.gather(*(_ask(service, timeout) for service in _walk(root)))
    return [reason for reason in answers if reason]
