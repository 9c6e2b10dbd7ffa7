"""Case 6: logins per second, and event-loop stall during a login flood (issue 7).

Both sides run the same line-based login server (``bench-login``: ``LOGIN user password`` ->
``OK``/``FAIL``, ``PING`` -> ``PONG``) with a portal built from ``--auth``. One run is a
flood by ``bench/_loginload.py`` (its own process, uvloop): 20 connections log in back to back
for a fixed time while one more connection pings the server every 20 ms. Reported per run:

- logins/s: successful logins divided by the flood's duration;
- loop stall: the slowest PING round trip during the flood (a loop busy hashing answers late);
- p50 latency: the median PING round trip;
- server efficiency: logins per CPU second the server process used (all its threads), which
  moves much less than the raw rate on a shared machine.

Comparisons:

1. ``--auth memory:`` on both sides (Twisted's needs ``--str-credentials``: its checker holds
   ``str`` while protocols send ``bytes``). No hashing: this measures the portal and protocol.
2. ``--auth unix`` on both sides with a throw-away account whose ``/etc/shadow`` entry is a
   ``$6$`` (sha512-crypt, 5000 rounds) hash, as ``useradd``/``openssl passwd -6`` write them.
   Twisted calls ``crypt()`` on the reactor thread; tapster hashes in its worker pool. Needs
   root and ``useradd`` (the account is deleted afterwards).
3. ``--auth file:`` with argon2id (tapster's default hash). Twisted's ``file:`` type keeps
   plain-text passwords and it has no hashed-file type, so only tapster is measured.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator

from bench import (
    LOGINS_PER_S,
    P50_MS,
    STALL_MS,
    Case,
    Comparison,
    Context,
    Metric,
    Server,
    Unavailable,
    bundled_tapster_plugins,
    bundled_twisted_plugins,
    free_port,
    run_login_load,
    start_server,
)

CONNECTIONS = 20
PING_EVERY = 0.02
USER, PASSWORD = "alice", "secret"
LOGINS_PER_CPU_S = Metric(
    "logins_per_cpu_s", "logins/CPU-s", lower_is_better=False, label="server efficiency"
)
METRICS = (LOGINS_PER_S, LOGINS_PER_CPU_S, STALL_MS, P50_MS)


def login_flood(server: Server, user: str, password: str, duration: float) -> dict[str, float]:
    """One run: ``bench/_loginload.py`` floods ``server`` with logins while pinging it."""
    cpu_before = server.cpu_seconds()
    result = run_login_load(
        server.port, [f"{user}:{password}"], connections=CONNECTIONS, duration=duration,
        ping_interval=PING_EVERY,
    )  # fmt: skip
    cpu = server.cpu_seconds() - cpu_before
    if result.get("fail", 0) or result.get("other", 0) or not result.get("ok", 0):
        raise RuntimeError(f"logins failed ({result}): the --auth set-up is wrong")
    return {
        **result,
        "p50_ms": result["ping_p50_ms"],
        "server_cpu_s": cpu,
        "logins_per_cpu_s": result["ok"] / cpu if cpu > 0 else 0.0,
    }


@contextlib.contextmanager
def _servers(
    ctx: Context, tapster_auth: list[str], twisted_auth: list[str] | None
) -> Iterator[tuple[Server, Server | None]]:
    """Start ``bench-login`` on both sides (twistd only if ``twisted_auth`` is given)."""
    root = ctx.tmpdir / "auth"
    bundled_tapster_plugins(root, "bench_login")
    tapster_port = free_port()
    tapster_argv = [ctx.tapster_bin("tapster"), "bench-login", "--port", str(tapster_port)]
    with contextlib.ExitStack() as stack:
        tapster = stack.enter_context(
            start_server(tapster_argv + tapster_auth, port=tapster_port, env=ctx.env(), cwd=root)
        )
        twisted = None
        if twisted_auth is not None:
            env = bundled_twisted_plugins(root, "bench_login")
            twisted_port = free_port()
            argv = [ctx.twisted_bin("twistd"), "-n", "--pidfile=", "bench-login"]
            argv += ["--port", str(twisted_port), *twisted_auth]
            twisted = stack.enter_context(
                start_server(argv, port=twisted_port, env=ctx.env(env), cwd=root)
            )
        yield tapster, twisted


@contextlib.contextmanager
def _unix_account() -> Iterator[tuple[str, str]]:
    """A throw-away system account with a ``$6$`` password (root only); deleted afterwards."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        raise Unavailable("needs root and useradd to create a throw-away account")
    from tapster.cred.hashing import hash_password

    name, password = f"tapbench{os.getpid() % 100000}", "bench-secret"
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(
        ["useradd", "--no-create-home", "-p", hash_password(password, "sha512-crypt"), name],
        check=True,
        capture_output=True,
    )
    try:
        yield name, password
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


def _started(server: Server | None) -> Server:
    if server is None:
        raise RuntimeError("the twistd server was not started")
    return server


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Yield the memory, unix and argon2 file comparisons, servers up around each."""
    duration = 1.0 if ctx.quick else 2.0

    memory = f"--auth=memory:{USER}:{PASSWORD}"
    with _servers(ctx, [memory], [memory, "--str-credentials"]) as (ts, tw_or_none):
        tw = _started(tw_or_none)
        yield Comparison(
            "memory checker",
            METRICS,
            tapster=lambda: login_flood(ts, USER, PASSWORD, duration),
            twistd=lambda: login_flood(tw, USER, PASSWORD, duration),
            note=f"{CONNECTIONS} connections, {duration:g} s flood, ping every 20 ms",
        )

    try:
        account = _unix_account()
        name, password = account.__enter__()
    except Unavailable as exc:
        reason = str(exc)

        def unavailable() -> dict[str, float]:
            raise Unavailable(reason)

        yield Comparison("unix, $6$ hash", METRICS, tapster=unavailable, twistd=unavailable)
    else:
        try:
            unix = ["--auth=unix"]
            with _servers(ctx, unix, [*unix, "--str-credentials"]) as (ts, tw_or_none):
                tw = _started(tw_or_none)
                yield Comparison(
                    "unix, $6$ hash",
                    METRICS,
                    tapster=lambda: login_flood(ts, name, password, duration),
                    twistd=lambda: login_flood(tw, name, password, duration),
                    note="sha512-crypt, 5000 rounds, from /etc/shadow",
                )
        finally:
            account.__exit__(None, None, None)

    users = ctx.tmpdir / "auth-users"
    from tapster.cred.hashing import hash_password

    users.write_text(f"{USER}:{hash_password(PASSWORD)}\n")
    os.chmod(users, 0o600)

    def twisted_has_no_hashed_file() -> dict[str, float]:
        raise Unavailable("Twisted's --auth file: stores plain text; it has no hashed-file type")

    slow = 3 * duration  # each login takes ~0.2 CPU-s: a longer flood counts enough of them
    with _servers(ctx, [f"--auth=file:{users}"], None) as (ts, _):
        yield Comparison(
            "argon2id file",
            METRICS,
            tapster=lambda: login_flood(ts, USER, PASSWORD, slow),
            twistd=twisted_has_no_hashed_file,
            note=f"argon2id, 64 MiB, t=3, p=4 (argon2-cffi's default); {slow:g} s flood",
        )


CASE = Case(
    name="auth",
    number=6,
    issue=7,
    title="Logins per second and loop stall during a login flood",
    comparisons=comparisons,
    runs=5,
)
