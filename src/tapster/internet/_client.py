"""A service that keeps one outgoing connection up, reconnecting with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tapster.endpoints import ClientEndpoint, client_from_string
from tapster.service import Service, ServiceError

logger = logging.getLogger("tapster.internet")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: the default retry policy.

    The delay before retry number ``attempt`` (0-based) is
    ``min(maximum, initial * factor ** attempt)``, reduced by a random part of
    up to ``jitter`` of itself so that many clients do not retry in step.
    With ``max_attempts`` set, the policy gives up (returns None) after that
    many failed attempts in a row.
    """

    initial: float = 0.1
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __call__(self, attempt: int) -> float | None:
        """Seconds to wait before retry ``attempt``, or None to give up."""
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        delay = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return delay * (1.0 - self.jitter * random.random())


#: A retry policy: failed attempts so far -> seconds to wait, or None to give up.
RetryPolicy = Callable[[int], float | None]


class ClientService(Service):
    """Keep a connection to ``endpoint`` open while the service runs.

    ``protocol_factory`` builds an asyncio protocol for each connection. When
    a connection attempt fails or an established connection is lost, the
    service waits ``retry(attempt)`` seconds and tries again; the attempt
    count starts over after every successful connection. ``await
    when_connected()`` returns the protocol of the current connection,
    waiting for one if needed.
    """

    def __init__(
        self,
        endpoint: ClientEndpoint | str,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        retry: RetryPolicy | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = client_from_string(endpoint) if isinstance(endpoint, str) else endpoint
        self.protocol_factory = protocol_factory
        self.retry: RetryPolicy = retry or Backoff()
        self.name = name
        self.attempts = 0
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._protocol: asyncio.BaseProtocol | None = None
        self._waiters: list[asyncio.Future[asyncio.BaseProtocol]] = []
        self._gave_up: BaseException | None = None

    async def start(self) -> None:
        """Begin connecting (in the background: ``start`` does not wait for the peer)."""
        self._gave_up = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def protocol(self) -> asyncio.BaseProtocol | None:
        """The protocol of the current connection, or None while disconnected."""
        return self._protocol

    async def when_connected(self) -> asyncio.BaseProtocol:
        """The protocol of the current connection; waits until there is one.

        Raises ``ServiceError`` if the service is stopped or its retry policy
        gave up.
        """
        if self._protocol is not None:
            return self._protocol
        if self._gave_up is not None:
            raise ServiceError(f"client {self.label} gave up: {self._gave_up}")
        if self._task is None:
            raise ServiceError(f"client {self.label} is not running")
        waiter: asyncio.Future[asyncio.BaseProtocol] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    async def _run(self) -> None:
        attempt = 0
        while True:
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            try:
                transport, protocol = await self.endpoint.connect(self._tracking_factory(lost))
            except Exception as exc:  # OSError, TimeoutError, or the factory's own error
                self.attempts += 1
                delay = self.retry(attempt)
                if delay is None:
                    self._give_up(exc)
                    return
                logger.info(
                    "client %s: connecting to %s failed (%s); retrying in %.2fs",
                    self.label,
                    self.endpoint.description,
                    exc,
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self.attempts += 1
            attempt = 0
            self._transport, self._protocol = transport, protocol
            if not getattr(protocol, "_tapster_tracked", False):
                # The protocol did not accept our connection_lost hook (__slots__):
                # watch the transport instead.
                asyncio.get_running_loop().create_task(_watch(transport, lost))
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(protocol)
            try:
                await lost
            finally:
                self._transport = self._protocol = None
            delay = self.retry(0)
            if delay is None:
                self._give_up(ConnectionError("connection lost"))
                return
            logger.info("client %s: connection lost; reconnecting in %.2fs", self.label, delay)
            await asyncio.sleep(delay)

    def _give_up(self, reason: BaseException) -> None:
        logger.error(
            "client %s: giving up on %s: %s", self.label, self.endpoint.description, reason
        )
        self._gave_up = reason
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(ServiceError(f"client {self.label} gave up: {reason}"))

    def _tracking_factory(self, lost: asyncio.Future[None]) -> Callable[[], asyncio.BaseProtocol]:
        """Wrap the factory so that the loss of the connection resolves ``lost``."""

        def build() -> asyncio.BaseProtocol:
            protocol = self.protocol_factory()
            original: Callable[[Any], None] = protocol.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                try:
                    original(exc)
                finally:
                    if not lost.done():
                        lost.set_result(None)

            try:
                protocol.connection_lost = connection_lost  # type: ignore[method-assign]
                protocol._tapster_tracked = True  # type: ignore[attr-defined]
            except AttributeError:
                pass
            return protocol

        return build

    async def stop(self) -> None:
        """Stop reconnecting and close the current connection."""
        task, self._task = self._task, None
        transport = self._transport
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        if transport is not None and not transport.is_closing():
            transport.close()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(ServiceError(f"client {self.label} was stopped"))
        await asyncio.sleep(0)


async def _watch(transport: asyncio.BaseTransport, lost: asyncio.Future[None]) -> None:
    """Resolve ``lost`` once ``transport`` is closing (for protocols we cannot hook)."""
    while not transport.is_closing() and not lost.done():
        await asyncio.sleep(0.25)
    if not lost.done():
        lost.set_result(None)
