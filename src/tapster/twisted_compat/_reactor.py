"""Twisted's asyncio reactor on tapster's event loop, and Twisted's log in tapster's.

The reactor must exist before the plugin module is imported (a plugin may
``from twisted.internet import reactor`` at its top, which would otherwise
install Twisted's default reactor), so it is installed when the plugin is
loaded, on a loop made then with the runner's ``--loop`` choice; the runner
later runs that same loop (``TwistedMaker.event_loop``).

tapster owns the process: its signal handlers stay (the reactor installs
none; SIGCHLD is routed to Twisted's process reaper through the loop), a
plugin calling ``reactor.stop()`` stops tapster as SIGTERM does, and the
reactor never stops tapster's loop itself.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

__all__ = ["ReactorError", "install_reactor", "log_to_stdlib"]


class ReactorError(Exception):
    """Twisted's reactor cannot run on tapster's loop (one message for the user)."""


def _reactor_class() -> type[AsyncioSelectorReactor]:
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    class TapsterReactor(AsyncioSelectorReactor):
        """Twisted's asyncio reactor that leaves the loop and the process to tapster."""

        tapster_stopping = False

        def stop(self) -> None:
            if self.tapster_stopping or self._stopped:
                super().stop()  # type: ignore[no-untyped-call]
                return
            # A plugin asked for the end: tapster stops the tree as on SIGTERM,
            # and stops the reactor itself once the services are stopped.
            os.kill(os.getpid(), signal.SIGTERM)

        def crash(self) -> None:
            # The base class stops the asyncio loop here, which tapster runs.
            from twisted.internet.base import ReactorBase

            ReactorBase.crash(self)

    return TapsterReactor


def install_reactor(loop: asyncio.AbstractEventLoop) -> Any:
    """Install Twisted's asyncio reactor on ``loop``; return it.

    Raises :class:`ReactorError` if another reactor was installed already
    (by something imported before the plugin).
    """
    current = sys.modules.get("twisted.internet.reactor")
    if current is not None:
        if getattr(current, "_asyncioEventloop", None) is loop:
            return current
        raise ReactorError(
            f"a Twisted reactor ({type(current).__name__}) was installed before tapster's"
        )
    from twisted.internet.main import installReactor

    reactor = _reactor_class()(loop)
    installReactor(reactor)  # type: ignore[no-untyped-call]
    return reactor


_LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40, "critical": 50}


def log_to_stdlib() -> None:
    """Send Twisted's log events (``twisted.logger`` and ``twisted.python.log``) to ``logging``.

    Each event becomes one record on the ``twisted`` logger, at the matching
    level, with its failure's traceback when it has one. Twisted does not
    redirect stdout and stderr (tapster's logs decide where they go).
    """
    import logging

    from twisted.logger import formatEvent, globalLogBeginner

    logger = logging.getLogger("twisted")

    def observe(event: dict[str, Any]) -> None:
        level = _LEVELS.get(getattr(event.get("log_level"), "name", "info"), logging.INFO)
        if not logger.isEnabledFor(level):
            return
        failure = event.get("log_failure")
        exc_info = None
        if failure is not None:
            exc_info = (failure.type, failure.value, failure.getTracebackObject())
        logger.log(level, "%s", formatEvent(event), exc_info=exc_info)

    observer: Any = observe  # any callable taking an event is an ILogObserver
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
