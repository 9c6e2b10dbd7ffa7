"""``sd_notify`` without a dependency: tell systemd (``Type=notify``) we are ready.

The protocol is one datagram of ``KEY=VALUE`` lines sent to the UNIX socket named
by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Nothing is
sent, and nothing fails, when the variable is absent.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify"]


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; return whether it was sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True
