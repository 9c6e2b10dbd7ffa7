"""The portal joins realm and checkers; logins never stall the loop or leak by timing."""

from __future__ import annotations

import asyncio
import select
import socket
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cred.credtools import FAST_ARGON2, run

from tapster.cred import hashing
from tapster.cred.checkers import (
    ANONYMOUS,
    AllowAnonymousAccess,
    AvatarId,
    InMemoryUsernamePasswordChecker,
    PasswordFileChecker,
)
from tapster.cred.credentials import Anonymous, SSHPrivateKey, UsernamePassword
from tapster.cred.errors import LoginDenied, UnauthorizedLogin, UnhandledCredentials
from tapster.cred.portal import Portal, Realm


class Avatar:
    def __init__(self, name: AvatarId) -> None:
        self.name = name
        self.logged_out = False

    def logout(self) -> None:
        self.logged_out = True


class TestRealm(Realm):
    __test__ = False

    def __init__(self) -> None:
        self.minds: list[object] = []

    async def request_avatar(
        self, avatar_id: AvatarId, mind: object, *interfaces: type
    ) -> tuple[type, object, Callable[[], None]]:
        if avatar_id == "banned":
            raise LoginDenied("banned users may not log in")
        if Avatar not in interfaces:
            raise NotImplementedError("only Avatar is provided")
        self.minds.append(mind)
        avatar = Avatar(avatar_id)
        return Avatar, avatar, avatar.logout


def test_login_success_and_logout() -> None:
    realm = TestRealm()
    portal = Portal(realm, [InMemoryUsernamePasswordChecker({"alice": "pw"})])
    interface, avatar, logout = run(portal.login(UsernamePassword("alice", "pw"), "mind", Avatar))
    assert interface is Avatar
    assert isinstance(avatar, Avatar) and avatar.name == "alice"
    assert realm.minds == ["mind"]
    logout()
    assert avatar.logged_out


def test_login_failures() -> None:
    portal = Portal(TestRealm(), [InMemoryUsernamePasswordChecker({"alice": "pw", "banned": "b"})])
    with pytest.raises(UnauthorizedLogin):
        run(portal.login(UsernamePassword("alice", "nope"), None, Avatar))
    with pytest.raises(UnauthorizedLogin):
        run(portal.login(UsernamePassword("eve", "pw"), None, Avatar))
    with pytest.raises(LoginDenied):
        run(portal.login(UsernamePassword("banned", "b"), None, Avatar))
    with pytest.raises(UnhandledCredentials):
        run(portal.login(Anonymous(), None, Avatar))
    assert portal.list_credential_interfaces() == [UsernamePassword]


def test_several_checkers_for_one_kind_are_tried_in_order() -> None:
    portal = Portal(TestRealm())
    portal.register_checker(InMemoryUsernamePasswordChecker({"a": "1"}))
    portal.register_checker(InMemoryUsernamePasswordChecker({"b": "2"}))
    portal.register_checker(AllowAnonymousAccess())
    assert run(portal.login(UsernamePassword("a", "1"), None, Avatar)).avatar.name == "a"  # type: ignore[attr-defined]
    assert run(portal.login(UsernamePassword("b", "2"), None, Avatar)).avatar.name == "b"  # type: ignore[attr-defined]
    assert run(portal.login(Anonymous(), None, Avatar)).avatar.name is ANONYMOUS  # type: ignore[attr-defined]
    with pytest.raises(UnauthorizedLogin):
        run(portal.login(UsernamePassword("a", "2"), None, Avatar))
    with pytest.raises(UnhandledCredentials):
        run(portal.login(SSHPrivateKey("a", "ssh-ed25519", b"blob"), None, Avatar))


def test_register_checker_needs_interfaces() -> None:
    class Nameless(InMemoryUsernamePasswordChecker):
        credential_interfaces = ()

    with pytest.raises(ValueError, match="names no credential interfaces"):
        Portal(TestRealm(), [Nameless()])


# --------------------------------------------------------------------------- loop stalls


_SLOW_HASH = type(FAST_ARGON2)(time_cost=2, memory_cost=16384, parallelism=1).hash("x")


async def _serve(portal: Portal, blocking: bool) -> asyncio.Server:
    """A line protocol: ``LOGIN user pass`` -> OK/NO, ``PING`` -> PONG."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            words = line.decode().split()
            if words == ["PING"]:
                writer.write(b"PONG\n")
            elif len(words) == 3 and words[0] == "LOGIN":
                if blocking:  # the mistake this test exists to catch
                    hashing.verify_password(words[2], _SLOW_HASH)
                try:
                    await portal.login(UsernamePassword(words[1], words[2]), None, Avatar)
                    writer.write(b"OK\n")
                except UnauthorizedLogin:
                    writer.write(b"NO\n")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


class ServerThread:
    """The line server on its own event loop in a thread, so the clients can time it."""

    def __init__(self, path: Path, blocking: bool) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(path, blocking),))

    async def _main(self, path: Path, blocking: bool) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await _serve(Portal(TestRealm(), [PasswordFileChecker(path)]), blocking)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _flood_and_ping(path: Path, blocking: bool) -> tuple[list[float], int]:
    """Fire 50 logins, then time 10 pings on another connection (plain blocking sockets)."""
    with ServerThread(path, blocking) as server:
        flood = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
        ping = socket.create_connection(("127.0.0.1", server.port))
        ping_file = ping.makefile("rb")
        for i, sock in enumerate(flood):
            sock.sendall(f"LOGIN user{i % 5} {'pw' if i % 2 else 'wrong'}\n".encode())
        latencies: list[float] = []
        during = 0
        for _ in range(10):
            start = time.perf_counter()
            ping.sendall(b"PING\n")
            assert ping_file.readline() == b"PONG\n"
            latencies.append(time.perf_counter() - start)
            ready, _, _ = select.select(flood, [], [], 0)
            during += len(ready) < len(flood)
            time.sleep(0.01)
        answers = []
        for sock in flood:
            sock.settimeout(60)
            answers.append(sock.makefile("rb").readline())
            sock.close()
        ping_file.close()
        ping.close()
    assert answers.count(b"OK\n") == 25 and answers.count(b"NO\n") == 25
    return latencies, during


def _flood_file(tmp_path: Path) -> Path:
    # Real argon2id at a modest cost (~20 ms a hash), so 50 logins take seconds, not minutes.
    hasher = type(FAST_ARGON2)(time_cost=2, memory_cost=16384, parallelism=1)
    path = tmp_path / "users"
    path.write_text("".join(f"user{i}:{hasher.hash('pw')}\n" for i in range(5)))
    return path


def test_loop_answers_pings_during_a_login_flood(tmp_path: Path) -> None:
    latencies, during = _flood_and_ping(_flood_file(tmp_path), blocking=False)
    assert during >= 5, "the flood finished too early to prove anything"
    # Generous for a shared 2-core machine; a hash on the loop costs ~150 ms.
    assert statistics.median(latencies) < 0.05, latencies


def test_a_blocking_checker_would_fail_the_ping_test(tmp_path: Path) -> None:
    """Control: the measurement does catch a loop that hashes in place."""
    latencies, _ = _flood_and_ping(_flood_file(tmp_path), blocking=True)
    assert max(latencies) > 0.05, latencies


# --------------------------------------------------------------------------- timing


def test_unknown_user_costs_as_much_as_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "users"
    params = {"time_cost": 2, "memory_cost": 16384, "parallelism": 1}
    hasher = type(FAST_ARGON2)(**params)
    path.write_text("".join(f"user{i}:{hasher.hash(f'pw{i}')}\n" for i in range(3)))
    checker = PasswordFileChecker(path)

    async def timed(user: str) -> float:
        start = time.perf_counter()
        with pytest.raises(UnauthorizedLogin):
            await checker.request_avatar_id(UsernamePassword(user, "not-the-password"))
        return time.perf_counter() - start

    async def measure() -> tuple[list[float], list[float]]:
        wrong: list[float] = []
        unknown: list[float] = []
        for i in range(30):  # interleaved, so load changes hit both alike
            wrong.append(await timed(f"user{i % 3}"))
            unknown.append(await timed(f"ghost{i}"))
        return wrong, unknown

    wrong, unknown = asyncio.run(measure())
    ratio = statistics.median(unknown) / statistics.median(wrong)
    # Without the dummy hash an unknown user answers >50x faster.
    assert 0.6 < ratio < 1.6, (ratio, statistics.median(wrong), statistics.median(unknown))
