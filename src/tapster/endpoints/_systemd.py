"""systemd socket activation: the sockets a service manager passed us.

systemd (and compatible managers) start the process with the listening
sockets as descriptors 3, 4, ... and describe them in the environment:
``LISTEN_PID`` (must be this process, else the variables were inherited from
a parent and are not ours), ``LISTEN_FDS`` (how many) and optionally
``LISTEN_FDNAMES`` (colon-separated names, from ``FileDescriptorName=``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: The first descriptor systemd passes.
FIRST_FD = 3


def listen_fds(environ: Mapping[str, str] | None = None) -> list[tuple[int, str]]:
    """The passed descriptors as ``(fd, name)`` pairs; raises ValueError if there are none."""
    env = os.environ if environ is None else environ
    pid_text = env.get("LISTEN_PID")
    count_text = env.get("LISTEN_FDS")
    if pid_text is None or count_text is None:
        raise ValueError("no sockets were passed: LISTEN_PID and LISTEN_FDS are not set")
    try:
        pid = int(pid_text)
        count = int(count_text)
    except ValueError:
        raise ValueError("LISTEN_PID and LISTEN_FDS must be numbers") from None
    if pid != os.getpid():
        raise ValueError(f"the passed sockets belong to process {pid}, not this one")
    if count < 1:
        raise ValueError("LISTEN_FDS says no sockets were passed")
    names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
    names += ["unknown"] * (count - len(names))
    return [(FIRST_FD + index, names[index]) for index in range(count)]
