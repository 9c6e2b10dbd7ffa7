"""The portal joins realm and checkers; logins never stall the loop or leak by timing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import select
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cred.credtools import FAST_ARGON2, run
from support import free_port, wait_for_port

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


class _Flood:
    """50 clients that each send wrong-password logins over keep-alive, one after another."""

    def __init__(self, port: int, clients: int = 50) -> None:
        header = b"Basic " + base64.b64encode(b"user1:wrong")
        self._request = b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: " + header + b"\r\n\r\n"
        self._port = port
        self._stop = threading.Event()
        self.answered = 0
        self._socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
        self._threads = [threading.Thread(target=self._client, args=(s,)) for s in self._socks]

    @property
    def flooding(self) -> int:
        """How many clients still send logins (a client stops at an error)."""
        return sum(thread.is_alive() for thread in self._threads)

    def _client(self, sock: socket.socket) -> None:
        with sock, contextlib.suppress(OSError):
            replies = sock.makefile("rb")
            while not self._stop.is_set():
                sock.sendall(self._request)
                length = 0
                while (line := replies.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if not line or not replies.read(length):
                    return
                self.answered += 1

    def __enter__(self) -> _Flood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Reset every connection (linger 0): the server drops the logins still queued
        # for these clients instead of hashing them before it can stop.
        self._stop.set()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)  # wakes the reading thread, which closes
        for thread in self._threads:
            thread.join(30)


def _probe_latencies(port: int, seconds: float) -> list[float]:
    """Time unauthenticated requests (a 401 the server answers without hashing), one
    every 5 ms on a keep-alive connection, from a thread the scheduler favours."""
    latencies: list[float] = []

    def probe() -> None:
        tid = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, -10)  # our own thread, so only client noise goes
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                start = time.perf_counter()
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = b""
                while not answer.endswith(b"</html>\n"):
                    chunk = sock.recv(65536)
                    assert chunk, "the server closed the probe's connection"
                    answer += chunk
                latencies.append(time.perf_counter() - start)
                assert answer.startswith(b"HTTP/1.1 401 "), answer[:100]
                time.sleep(0.005)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(seconds + 30)
    return sorted(latencies)


def _hashing_cpus(pid: int) -> tuple[set[int], set[int]]:
    """The CPUs the main (loop) thread of ``pid`` may use, and the union of those its
    hashing threads (every thread niced below the main one: pool and argon2 lanes) may."""
    loop_cpus = os.sched_getaffinity(pid)
    base = os.getpriority(os.PRIO_PROCESS, pid)
    hashing: set[int] = set()
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        with contextlib.suppress(OSError):  # a lane thread may end meanwhile
            if os.getpriority(os.PRIO_PROCESS, tid) > base:
                hashing |= os.sched_getaffinity(tid)
    return loop_cpus, hashing


@pytest.mark.slow
def test_web_answers_during_a_login_flood(tapster_proc: Any, tmp_path: Path) -> None:
    """``tapster web --auth file:`` with real argon2id entries (the default cost: 64 MiB,
    3 passes, 4 lanes, each lane a thread of its own) and 50 clients sending wrong
    passwords without pause: cheap requests on another connection keep a worst case of
    50 ms and a p99 of 10 ms.

    First the mechanism, which fails for certain when it is missing: the hashing
    threads, argon2's lane threads included, leave one CPU to the loop. Then the
    figures. The server runs at nice -10 (its hashing threads, 10 above it, at 0) when
    the tests run as root, so that other work on a shared machine delays the loop less
    than the hashing does, and a window of 2.5 s is measured up to four times: a spike
    from outside must not fail the test, a loop that stalls in every window does. With
    hashing on every core the 2-core machine this was written on gave p99 6-23 ms and
    worst 17-90 ms (some windows within the bounds); with one CPU kept free, p99
    1-6 ms and worst 3-18 ms, up to 49 ms when other tests ran beside it.
    """
    stored = hashing.hash_password("pw")
    users = tmp_path / "users"
    users.write_text("".join(f"user{i}:{stored}\n" for i in range(5)))
    users.chmod(0o600)
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    boost = (lambda: os.setpriority(os.PRIO_PROCESS, 0, -10)) if os.geteuid() == 0 else None
    listen = f"tcp:{port}:interface=127.0.0.1"
    args = ["--listen", listen, "--path", str(site), "--auth", f"file:{users}"]
    proc = tapster_proc.start("web", "--no-access-log", *args, preexec_fn=boost)
    wait_for_port(port, timeout=20)
    windows = []
    with _Flood(port) as flood:
        time.sleep(0.5)  # every flooding client has a login in the pool
        # The mechanism: hashing threads (and the lanes argon2 starts) keep off one CPU.
        loop_cpus, hashing_cpus = _hashing_cpus(proc.pid)
        assert hashing_cpus, "no hashing thread at a lower priority during the flood"
        if len(loop_cpus) > 1:
            assert loop_cpus - hashing_cpus, (loop_cpus, hashing_cpus)
        for _ in range(4):
            before = flood.answered
            latencies = _probe_latencies(port, 2.5)
            worst, p99 = latencies[-1], latencies[int(len(latencies) * 0.99)]
            windows.append(
                f"n={len(latencies)} logins={flood.answered - before} "
                f"median={statistics.median(latencies) * 1000:.1f} "
                f"p99={p99 * 1000:.1f} max={worst * 1000:.1f} ms"
            )
            assert flood.flooding == 50, "flooding clients were cut off: nothing to measure"
            if worst <= 0.050 and p99 <= 0.010:
                break
        else:
            pytest.fail("the loop stalled during the login flood: " + "; ".join(windows))
    print("; ".join(windows))


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
