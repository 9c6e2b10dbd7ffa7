"""Endpoints on real sockets: TLS handshakes, inherited sockets, systemd activation."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from support import make_tls_files

from tapster.endpoints import EndpointError, client_from_string, server_from_string
from tapster.internet import StreamServerService


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def port_of(service: StreamServerService) -> int:
    return int(service.listening()[0].rsplit(":", 1)[1])


@pytest.mark.parametrize("form", ["separate", "combined", "chain"])
def test_tls_handshake_with_a_certificate_the_test_made(
    run_async: Any, tls: dict[str, Path], form: str
) -> None:
    if form == "separate":
        description = f"ssl:0:interface=127.0.0.1:cert={tls['cert']}:key={tls['key']}"
    elif form == "combined":
        description = f"tls:0:interface=127.0.0.1:privateKey={tls['combined']}"
    else:
        description = (
            f"ssl:0:interface=127.0.0.1:certKey={tls['cert']}:privateKey={tls['key']}"
            f":extraCertChain={tls['ca']}"
        )
    service = StreamServerService(description, echo)

    async def scenario() -> None:
        await service.start()
        assert service.listening()[0].startswith("ssl:127.0.0.1:")
        port = port_of(service)
        client = client_from_string(f"ssl:host=127.0.0.1:port={port}:ca={tls['ca']}")
        reader, writer = await client.open_connection()
        writer.write(b"secret")
        assert await reader.readexactly(6) == b"secret"
        tls_object = writer.get_extra_info("ssl_object")
        assert tls_object.version() in ("TLSv1.2", "TLSv1.3")
        writer.close()
        # The server name is checked: a name the certificate lacks fails.
        wrong = client_from_string(
            f"ssl:host=127.0.0.1:port={port}:ca={tls['ca']}:server_name=wrong.example"
        )
        with pytest.raises(ssl_error()):
            await wrong.open_connection()
        # A client that does not trust the CA fails too.
        untrusting = client_from_string(f"ssl:host=localhost:port={port}")
        with pytest.raises(ssl_error()):
            await untrusting.open_connection()
        await service.stop()

    run_async(scenario())


def ssl_error() -> type[Exception]:
    import ssl

    return ssl.SSLError


def test_tls_files_are_checked_when_parsed(tls: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(EndpointError, match="does not belong to the certificate"):
        server_from_string(f"ssl:443:cert={tls['cert']}:key={tls['other_key']}")
    with pytest.raises(EndpointError, match="holds no PEM private key"):
        server_from_string(f"ssl:443:cert={tls['cert']}")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(EndpointError, match="holds no PEM certificate"):
        server_from_string(f"ssl:443:cert={garbage}:key={tls['key']}")
    with pytest.raises(EndpointError, match="holds no PEM certificate"):
        client_from_string(f"ssl:host=h:port=1:ca={garbage}")


def test_fd_endpoint_adopts_an_inherited_socket(run_async: Any) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    service = StreamServerService(f"fd:{listener.fileno()}", echo)

    async def scenario() -> None:
        await service.start()
        assert service.listening() == [f"tcp:127.0.0.1:{port}"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"adopted")
        assert await reader.readexactly(7) == b"adopted"
        writer.close()
        await service.stop()

    try:
        run_async(scenario())
    finally:
        listener.close()


def test_fd_endpoint_rejects_what_is_not_a_listening_socket(tmp_path: Path) -> None:
    with (
        open(tmp_path / "f", "w") as handle,
        pytest.raises(EndpointError, match="not an open socket"),
    ):
        server_from_string(f"fd:{handle.fileno()}")
    with socket.socket() as unbound:
        endpoint = server_from_string(f"fd:{unbound.fileno()}")
        with pytest.raises(OSError, match="not listening"):
            endpoint.bind()


def test_systemd_environment_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LISTEN_PID", raising=False)
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    with pytest.raises(EndpointError, match="LISTEN_PID and LISTEN_FDS are not set"):
        server_from_string("systemd:index=0")
    monkeypatch.setenv("LISTEN_PID", "1")
    monkeypatch.setenv("LISTEN_FDS", "1")
    with pytest.raises(EndpointError, match="belong to process 1, not this one"):
        server_from_string("systemd:index=0")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    monkeypatch.setenv("LISTEN_FDNAMES", "web")
    with pytest.raises(EndpointError, match=r"index 3 is out of range: 1 socket\(s\) were passed"):
        server_from_string("systemd:index=3")
    with pytest.raises(EndpointError, match=r"no socket named 'api' was passed \(names: web\)"):
        server_from_string("systemd:name=api")


ACTIVATED = textwrap.dedent(
    """
    import asyncio, sys
    from tapster.endpoints import server_from_string
    from tapster.internet import StreamServerService

    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def main():
        services = [StreamServerService(server_from_string(d), echo) for d in sys.argv[1:]]
        for service in services:
            service.privileged_start()
        for service in services:
            await service.start()
        print(" ".join(a for s in services for a in s.listening()), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        for service in services:
            await service.stop()

    asyncio.run(main())
    """
)


def test_socket_activation_handoff_to_a_real_process(tmp_path: Path) -> None:
    """Like systemd: sockets on fds 3 and 4, LISTEN_PID set to the child's own pid."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    unix_path = str(tmp_path / "activated.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    unix.listen()
    script = tmp_path / "activated.py"
    script.write_text(ACTIVATED)
    # bash moves the sockets to 3 and 4, then becomes python with its own pid in LISTEN_PID.
    shell = (
        f"exec 3<&{tcp.fileno()} 4<&{unix.fileno()} {tcp.fileno()}<&- {unix.fileno()}<&-; "
        'export LISTEN_PID=$$; exec "$@"'
    )
    env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="web:admin")
    proc = subprocess.Popen(
        ["bash", "-c", shell, "bash", sys.executable, str(script),
         "systemd:name=web", "systemd:index=1:domain=UNIX"],
        pass_fds=(tcp.fileno(), unix.fileno()),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    tcp_port = tcp.getsockname()[1]
    tcp.close()
    unix.close()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line == [f"tcp:127.0.0.1:{tcp_port}", f"unix:{unix_path}"], proc.stderr
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as conn:
            conn.sendall(b"activated")
            assert conn.recv(100) == b"activated"
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(unix_path)
            conn.sendall(b"over unix")
            assert conn.recv(100) == b"over unix"
        _, errors = proc.communicate("", timeout=10)
        assert proc.returncode == 0, errors
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_unix_mode_is_exact_and_the_umask_is_restored(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        for mode in (0o600, 0o660, 0o666):
            path = tmp_path / f"m{mode:o}.sock"
            endpoint = server_from_string(f"unix:{path}:mode={mode:o}")
            sockets = endpoint.bind()
            assert path.stat().st_mode & 0o777 == mode
            assert os.umask(0o022) == 0o022  # put back as it was
            endpoint.release(sockets)
            assert not path.exists()
    finally:
        os.umask(before)


def test_unix_client_endpoint(run_async: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    service = StreamServerService(f"unix:{path}", echo)

    async def scenario() -> None:
        await service.start()
        reader, writer = await client_from_string(f"unix:path={path}").open_connection()
        writer.write(b"local")
        assert await reader.readexactly(5) == b"local"
        writer.close()
        await service.stop()

    run_async(scenario())


def test_unprivileged_bind_failure_says_why(tmp_path: Path) -> None:
    """As user nobody, port 80 cannot be bound, and the message says so in one line.

    The interpreter lives where nobody may not execute it, so the process starts
    as root and becomes nobody before binding (as the runner does after binding).
    """
    code = (
        "import os, pwd\n"
        "from tapster.endpoints import ListenError, server_from_string\n"
        "nobody = pwd.getpwnam('nobody')\n"
        "os.setgroups([])\n"
        "os.setgid(nobody.pw_gid)\n"
        "os.setuid(nobody.pw_uid)\n"
        "try:\n"
        "    server_from_string('tcp:80:interface=127.0.0.1').bind()\n"
        "except ListenError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Couldn't listen on 127.0.0.1:80: permission denied\n"


def test_a_unix_path_that_is_too_long_says_so(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120)
    with pytest.raises(OSError, match=r"Couldn't listen on .*: AF_UNIX path too long"):
        server_from_string(f"unix:{path}").bind()
