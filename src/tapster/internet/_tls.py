"""Telling a TLS transport from a plain one, the same way on every loop."""

from __future__ import annotations

import asyncio

__all__ = ["is_tls"]


def is_tls(transport: asyncio.BaseTransport) -> bool:
    """True when ``transport`` carries TLS (asyncio's loop and uvloop alike).

    TLS has no half-close: after the peer's EOF the loop closes a TLS
    connection whatever ``eof_received`` returns, and warns when it returns
    True. So a protocol that keeps plain connections half-open returns
    ``not is_tls(transport)``.
    """
    return transport.get_extra_info("sslcontext") is not None
