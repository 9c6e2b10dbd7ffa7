"""Services and collections of services: things that start and stop.

Life cycle of a service (the contract every subclass gets for free)::

    privileged_start()   sync, may run before the event loop exists and
                         before privileges are dropped: bind sockets here.
    await start()        start serving. When it returns the service is
                         running and listening (the readiness contract).
    await stop()         release everything; bounded by the shutdown budget.

Subclasses override any of the three and call ``super()``. The base class
wraps every override so that out-of-order calls have one defined meaning:

* ``start()`` on a running service does nothing; ``start()`` without
  ``privileged_start()`` runs it first.
* ``stop()`` on a service that was never started does nothing; ``stop()`` after
  only ``privileged_start()`` releases what was bound.
* ``stop()`` while ``start()`` is in progress waits for the start to end first,
  and ``start()`` while ``stop()`` is in progress waits for the stop.
* ``stop()`` called by a service's own ``start()`` (to clean up a partial
  start) runs at once, and the service is not running afterwards;
  ``start()`` called by its own ``stop()`` does nothing.
* A service that was stopped can be started again.
* If ``start()`` raises, the service is not running.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from tapster.service._budget import run_stop

logger = logging.getLogger("tapster.service")

_S = TypeVar("_S", bound="Service")


class ServiceError(Exception):
    """A service tree was used in a way its contract does not allow."""


class ServiceStartError(ServiceError):
    """A service failed to start; ``service_name`` is its path in the tree."""

    def __init__(self, service_name: str, cause: BaseException) -> None:
        self.service_name = service_name
        self.cause = cause
        super().__init__(f"service '{service_name}' failed to start: {cause}")


def _guard_sync(method: Callable[[_S], None], *, acquire: bool) -> Callable[[_S], None]:
    """Wrap ``privileged_start`` (acquire) or ``release_privileged`` (release)."""

    @functools.wraps(method)
    def guarded(self: _S) -> None:
        key = method.__name__
        if self._nesting.get(key):  # a super() call from an override
            method(self)
            return
        if self.running or self._privileged == acquire:
            return
        self._nesting[key] = True
        try:
            method(self)
        finally:
            self._nesting[key] = None
        self._privileged = acquire

    return guarded


def _guard_start(
    method: Callable[[_S], Awaitable[None]],
) -> Callable[[_S], Awaitable[None]]:
    @functools.wraps(method)
    async def start(self: _S) -> None:
        task = asyncio.current_task()
        if self._nesting.get("start") is task:  # a super() call from an override
            await method(self)
            return
        if self._nesting.get("stop") is task:  # start() from within our own stop()
            return
        while self._transition is not None:
            await asyncio.shield(self._transition)
        if self.running:
            return
        self.privileged_start()
        done = asyncio.get_running_loop().create_future()
        self._transition = done
        self._nesting["start"] = task
        self._nesting["stopped_in_start"] = False
        try:
            await method(self)
        except BaseException:
            self.running = False
            self._nesting["start"] = None
            self.release_privileged()
            raise
        else:
            if self._nesting.get("stopped_in_start"):
                self._nesting["start"] = None
                self.release_privileged()
            else:
                self.running = True
        finally:
            self._nesting["start"] = None
            self._transition = None
            done.set_result(None)

    return start


def _guard_stop(
    method: Callable[[_S], Awaitable[None]],
) -> Callable[[_S], Awaitable[None]]:
    @functools.wraps(method)
    async def stop(self: _S) -> None:
        task = asyncio.current_task()
        if self._nesting.get("stop") is task:  # a super() call from an override
            await method(self)
            return
        if self._nesting.get("start") is task:
            # stop() from within our own start(), to clean up a partial start:
            # run it now (waiting for the start would wait for ourselves).
            self._nesting["stopped_in_start"] = True
            self._nesting["stop"] = task
            try:
                await method(self)
            finally:
                self._nesting["stop"] = None
            return
        while self._transition is not None:
            await asyncio.shield(self._transition)
        if not self.running:
            self.release_privileged()
            return
        done = asyncio.get_running_loop().create_future()
        self._transition = done
        self._nesting["stop"] = task
        try:
            await method(self)
        finally:
            self.running = False
            self._privileged = False
            self._nesting["stop"] = None
            self._transition = None
            done.set_result(None)

    return stop


class Service:
    """Something that starts and stops: a server, a timer, a client.

    ``name`` is optional and unique among the children of one collection.
    ``listening()`` reports what this service listens on once started.
    """

    name: str | None = None
    parent: MultiService | None = None
    running: bool = False

    def __init__(self) -> None:
        self.running = False
        self.parent = None
        self._init_state()

    def _init_state(self) -> None:
        self._privileged = False
        self._transition: asyncio.Future[None] | None = None
        self._nesting: dict[str, object] = {}

    def __getattr__(self, attr: str) -> Any:
        # Subclasses that forget super().__init__() still get a working state.
        if attr in ("_privileged", "_transition", "_nesting"):
            self._init_state()
            return getattr(self, attr)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _install_guards(cls)

    @property
    def label(self) -> str:
        """The service's path in its tree for messages, e.g. ``web/http`` or ``#2 (TCPServer)``."""
        own = self.name if self.name is not None else self._anonymous_label()
        if self.parent is None or self.parent.parent is None:
            return own
        return f"{self.parent.label}/{own}"

    def _anonymous_label(self) -> str:
        if self.parent is not None and len(self.parent) > 1:
            for index, child in enumerate(self.parent):
                if child is self:
                    return f"#{index + 1} ({type(self).__name__})"
        return type(self).__name__

    def set_parent(self, collection: MultiService) -> asyncio.Task[None] | None:
        """Add this service to ``collection`` (see ``MultiService.add_service``)."""
        return collection.add_service(self)

    def disown_parent(self) -> asyncio.Task[None] | None:
        """Leave the collection (see ``MultiService.remove_service``)."""
        if self.parent is None:
            raise ServiceError(f"service '{self.label}' has no parent to leave")
        return self.parent.remove_service(self)

    def privileged_start(self) -> None:
        """Acquire what needs privileges (bind sockets). Synchronous; no loop needed."""

    def release_privileged(self) -> None:
        """Give back what ``privileged_start`` took when ``start`` will not run.

        Called by the base class when a bound service is stopped without having
        started (for example because a sibling failed to start). Synchronous.
        """

    async def start(self) -> None:
        """Start the service; when this returns it is running and listening."""

    async def stop(self) -> None:
        """Stop the service and release everything it holds."""

    def listening(self) -> list[str]:
        """What this service listens on, e.g. ``["tcp:127.0.0.1:8080"]`` (empty if nothing)."""
        return []

    async def readiness(self) -> str | None:
        """Whether this service can take work now: None when it can, else why not.

        Override it to check what the service depends on (ping a database, look
        at a queue's depth). The admin endpoint's ``/readyz`` calls it on every
        running service of the tree, at once, each within
        ``tapster.service.READINESS_TIMEOUT`` seconds; raising or overrunning
        counts as not ready. It must not block the loop. The default: ready.
        """
        return None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        name = f" {self.name!r}" if self.name is not None else ""
        return f"<{type(self).__name__}{name} {state}>"


def _install_guards(cls: type[Service]) -> None:
    guards: dict[str, Callable[[Any], Any]] = {
        "privileged_start": functools.partial(_guard_sync, acquire=True),
        "release_privileged": functools.partial(_guard_sync, acquire=False),
        "start": _guard_start,
        "stop": _guard_stop,
    }
    for attr, guard in guards.items():
        method = cls.__dict__.get(attr)
        if method is not None and not getattr(method, "_tapster_guarded", False):
            should_be_async = attr in ("start", "stop")
            if inspect.iscoroutinefunction(method) != should_be_async:
                kind = "an 'async def'" if should_be_async else "a plain 'def' (synchronous)"
                raise TypeError(f"{cls.__qualname__}.{attr} must be {kind} method")
            wrapped = guard(method)
            wrapped._tapster_guarded = True
            setattr(cls, attr, wrapped)


_install_guards(Service)


class MultiService(Service):
    """A collection of services: started in insertion order, stopped in reverse.

    Error handling: if a child fails to bind or start, the children already
    started are stopped again (in reverse) and :class:`ServiceStartError`
    naming the child is raised. A child that fails while stopping is logged
    and the others are still stopped.
    """

    def __init__(self) -> None:
        super().__init__()
        self._children: list[Service] = []
        self._named: dict[str, Service] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def __iter__(self) -> Iterator[Service]:
        return iter(list(self._children))

    def __len__(self) -> int:
        return len(self._children)

    def __bool__(self) -> bool:
        # A collection is a service, never "false" because it is empty.
        return True

    def get_service_named(self, name: str) -> Service:
        """The child called ``name``; raises ``KeyError`` if there is none."""
        return self._named[name]

    def add_service(self, service: Service) -> asyncio.Task[None] | None:
        """Add ``service`` as the last child.

        On a running collection the child is bound at once and started in a
        task, which is returned so the caller can await it (a failure is also
        logged, and the child is then removed again). Otherwise returns None.
        """
        if service.parent is not None:
            raise ServiceError(
                f"service '{service.label}' already belongs to '{service.parent.label}'; "
                "call disown_parent() first"
            )
        if service is self or _is_ancestor(service, self):
            raise ServiceError(f"service '{service.label}' cannot contain itself")
        if service.name is not None:
            if service.name in self._named:
                raise ServiceError(
                    f"'{self.label}' already has a service named {service.name!r}; "
                    "names must be unique within a collection"
                )
            self._named[service.name] = service
        self._children.append(service)
        service.parent = self
        if not self.running:
            return None
        task = asyncio.ensure_future(self._start_late_child(service))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _start_late_child(self, service: Service) -> None:
        try:
            await _start_child(service)
        except ServiceStartError as exc:
            logger.error("%s", exc)
            if service.parent is self:
                self._detach(service)
            raise

    def remove_service(self, service: Service) -> asyncio.Task[None] | None:
        """Remove ``service``; if it is running it is stopped in a returned task."""
        if service.parent is not self:
            raise ServiceError(f"service '{service.label}' is not a child of '{self.label}'")
        label = service.label
        self._detach(service)
        if not service.running:
            service.release_privileged()
            return None
        task = asyncio.ensure_future(run_stop(service, label))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    def _detach(self, service: Service) -> None:
        self._children.remove(service)
        if service.name is not None:
            self._named.pop(service.name, None)
        service.parent = None

    def privileged_start(self) -> None:
        """Bind every child, in order; unbind them again if one fails."""
        bound: list[Service] = []
        for child in self._children:
            try:
                child.privileged_start()
            except Exception as exc:
                for other in reversed(bound):
                    other.release_privileged()
                if isinstance(exc, ServiceStartError):
                    raise
                raise ServiceStartError(child.label, exc) from exc
            bound.append(child)

    def release_privileged(self) -> None:
        """Unbind every child that was bound but not started, newest first."""
        for child in reversed(self._children):
            child.release_privileged()

    async def start(self) -> None:
        """Start every child in insertion order; unwind in reverse if one fails.

        Children bound but not yet started are unbound by the base class when
        this raises (``release_privileged``).
        """
        started: list[Service] = []
        index = 0
        # By index, so that a child added while this start runs is started too.
        while index < len(self._children):
            child = self._children[index]
            index += 1
            if child in started:
                continue
            try:
                await _start_child(child)
            except BaseException:
                for other in reversed(started):
                    await run_stop(other)
                raise
            started.append(child)

    async def stop(self) -> None:
        """Stop every child in reverse order, each within the shutdown budget."""
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.wait(set(self._pending))
        for child in reversed(self._children):
            await run_stop(child)

    def listening(self) -> list[str]:
        """Everything the children listen on, in start order."""
        return [address for child in self._children for address in child.listening()]


async def _start_child(child: Service) -> None:
    try:
        await child.start()
    except ServiceStartError:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise ServiceStartError(child.label, exc) from exc


def _is_ancestor(candidate: Service, service: Service) -> bool:
    node = service.parent
    while node is not None:
        if node is candidate:
            return True
        node = node.parent
    return False
