"""A Twisted ``IService`` tree run as one tapster service, on the installed reactor.

``privileged_start`` calls ``privilegedStartService`` (the runner calls it
while still privileged); ``start`` calls ``startService``, starts the reactor
(its "startup" triggers, without signal handlers: tapster owns signals) and
returns once listening. ``stop`` calls ``stopService`` and waits for its
Deferred, then stops the reactor (its "shutdown" triggers: the thread pool
and whatever plugins registered) and waits for their end; the runner bounds
the whole by ``--shutdown-timeout``.

Readiness: Twisted's ``listenTCP``/``listenUNIX``/``listenSSL`` bind and
listen synchronously and register the port with the reactor as a reader, so
``internet.TCPServer`` and friends are listening when ``startService``
returns. Endpoint services (``strports.service``, what ``twisted web`` uses)
keep the ``Deferred`` of their ``listen()`` in ``_waitingForPort``; ``start``
waits for each of those to fire. What is listening is then read from the
reactor itself: its readers that provide ``IListeningPort``.
"""

from __future__ import annotations

import signal
from typing import Any

from tapster.service import Service

__all__ = ["TwistedService"]


def _future(deferred: Any, loop: Any) -> Any:
    """An asyncio future with ``deferred``'s outcome; the Deferred's own chain is unchanged."""
    future = loop.create_future()

    def succeeded(result: object) -> object:
        if not future.done():
            future.set_result(result)
        return result

    def failed(failure: Any) -> object:
        if not future.done():
            future.set_exception(failure.value)
        return failure

    deferred.addCallbacks(succeeded, failed)
    return future


def _pending_listens(root: Any) -> list[Any]:
    """The ``listen()`` Deferreds of every endpoint service in the tree, in tree order."""
    from twisted.application.service import IServiceCollection

    found: list[Any] = []
    stack = [root]
    while stack:
        current = stack.pop(0)
        waiting = getattr(current, "_waitingForPort", None)
        if waiting is not None and hasattr(waiting, "addCallbacks"):
            found.append(waiting)
        collection = IServiceCollection(current, None)
        if collection is not None:
            stack.extend(collection)
    return found


def _describe_address(address: Any) -> str:
    kind = str(getattr(address, "type", "")).lower()
    if hasattr(address, "port"):
        return f"{kind or 'tcp'}:{address.host}:{address.port}"
    name = getattr(address, "name", None)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return f"unix:{name}" if name else str(address)


class TwistedService(Service):
    """Runs a Twisted service tree (an ``Application``'s ``IService``) under tapster."""

    def __init__(self, twisted_service: Any, loop: Any) -> None:
        super().__init__()
        self.twisted_service = twisted_service
        self._loop = loop
        self._listening: list[str] = []
        self._reaping = False

    @property
    def _reactor(self) -> Any:
        from twisted.internet import reactor

        return reactor

    def privileged_start(self) -> None:
        self.twisted_service.privilegedStartService()

    async def start(self) -> None:
        reactor = self._reactor
        self.twisted_service.startService()
        if not reactor._started:
            reactor.startRunning(installSignalHandlers=False)
        self._reap_children()
        for waiting in _pending_listens(self.twisted_service):
            port = await _future(waiting, self._loop)
            if port is None:  # the service logged why it could not listen
                raise OSError("a Twisted endpoint service could not listen (see the log)")
        from twisted.internet.interfaces import IListeningPort

        self._listening = [
            _describe_address(reader.getHost())
            for reader in reactor.getReaders()
            if IListeningPort.providedBy(reader)
        ]

    def _reap_children(self) -> None:
        """Route SIGCHLD to Twisted's reaper (``spawnProcess`` children), through the loop."""
        from twisted.internet import process

        try:
            self._loop.add_signal_handler(signal.SIGCHLD, process.reapAllProcesses)
        except (NotImplementedError, RuntimeError, ValueError):
            return
        self._reaping = True
        process.reapAllProcesses()  # any that ended before the handler was there

    async def stop(self) -> None:
        from twisted.internet import defer

        reactor = self._reactor
        try:
            await _future(defer.maybeDeferred(self.twisted_service.stopService), self._loop)
        finally:
            if self._reaping:
                self._loop.remove_signal_handler(signal.SIGCHLD)
                self._reaping = False
            if reactor._started and not reactor._stopped:
                ended: Any = defer.Deferred()
                reactor.addSystemEventTrigger("after", "shutdown", ended.callback, None)
                reactor.tapster_stopping = True
                reactor.stop()
                await _future(ended, self._loop)
        self._listening = []

    def listening(self) -> list[str]:
        return list(self._listening)
