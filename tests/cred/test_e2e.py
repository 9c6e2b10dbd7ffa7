"""Acceptance: the seed's ``myserver`` example, written for tapster, run by the real command.

A temporary folder holds a drop-in plugin (``tapster/plugins/myserver_plugin.py``)
and the small package it uses (``myserver/``): options with ``port`` and ``host``
plus ``AuthOptionMixin``, a realm, a portal built from ``options["cred_checkers"]``
and a line protocol (``LOGIN user password`` -> ``WELCOME ...`` or ``DENIED``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cred.credtools import apr1_hash, argon2_hash, bcrypt_hash, sha512_hash
from support import free_port, run_tapster, wait_for_port

PLUGIN = '''\
"""The seed's second example for tapster: a server whose users log in with --auth."""

from tapster.cred import credentials, strcred
from tapster.service import ServiceMaker
from tapster.usage import Options, port


class ServerOptions(Options, strcred.AuthOptionMixin):
    # Optional: tells AuthOptionMixin which credentials our protocol sends.
    supported_interfaces = (credentials.UsernamePassword,)
    parameters = [
        ("port", "p", 1234, "Server port number", port),
        ("host", "h", "localhost", "Server hostname"),
    ]


class MyServerMaker(ServiceMaker):
    tapname = "myserver"
    description = "A line-based login server (the cred example)."
    options = ServerOptions

    def make_service(self, options):
        from myserver import MyServerRealm, make_handler
        from tapster.cred.portal import Portal
        from tapster.internet import TCPServer

        # The realm is ours; the checkers come from --auth.
        realm = MyServerRealm(options["host"])
        portal = Portal(realm, options["cred_checkers"])
        # Or, to use only the checkers for one kind of credentials:
        # portal = Portal(realm, options["cred_interfaces"][credentials.UsernamePassword])
        return TCPServer(options["port"], make_handler(portal), interface="127.0.0.1")


service_maker = MyServerMaker()
'''

PACKAGE = '''\
"""myserver: a realm and a line protocol, knowing nothing about password files."""

from tapster.cred import LoginFailed, Realm, UsernamePassword


class Session:
    def __init__(self, user, host):
        self.user, self.host = user, host


class MyServerRealm(Realm):
    def __init__(self, host):
        self.host = host

    async def request_avatar(self, avatar_id, mind, *interfaces):
        return Session, Session(avatar_id, self.host), lambda: None


def make_handler(portal):
    async def handle(reader, writer):
        while line := await reader.readline():
            parts = line.rstrip(b"\\r\\n").split(b" ", 2)
            if parts[0] == b"LOGIN" and len(parts) == 3:
                try:
                    _, session, logout = await portal.login(
                        UsernamePassword(parts[1], parts[2]), None, Session
                    )
                except LoginFailed:
                    writer.write(b"DENIED\\n")
                else:
                    writer.write(f"WELCOME {session.user}@{session.host}\\n".encode())
                    logout()
            else:
                writer.write(b"ERROR say: LOGIN user password\\n")
            await writer.drain()
        writer.close()

    return handle
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    plugins = tmp_path / "app" / "tapster" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "myserver_plugin.py").write_text(PLUGIN)
    (tmp_path / "app" / "myserver").mkdir()
    (tmp_path / "app" / "myserver" / "__init__.py").write_text(PACKAGE)
    return tmp_path / "app"


def login(port: int, user: bytes, password: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"LOGIN " + user + b" " + password + b"\n")
        return sock.makefile("rb").readline().decode().strip()


def start(tapster_proc: object, app_dir: Path, *auth: str) -> int:
    return start_proc(tapster_proc, app_dir, *auth)[0]


def start_proc(
    tapster_proc: object, app_dir: Path, *auth: str
) -> tuple[int, subprocess.Popen[str]]:
    port = free_port()
    args = ["myserver", "--port", str(port), "--host", "example.test"]
    for a in auth:
        args += ["--auth", a]
    proc = tapster_proc.start(*args, cwd=app_dir)  # type: ignore[attr-defined]
    try:
        wait_for_port(port, timeout=20)
    except TimeoutError:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"myserver did not start: {err}") from None
    return port, proc


def test_help_auth(app_dir: Path) -> None:
    result = run_tapster(["myserver", "--help-auth"], cwd=app_dir)
    assert result.returncode == 0, result.stderr
    for auth_type in ("memory", "file", "passwd", "htpasswd", "unix"):
        assert f"  {auth_type} " in result.stdout
    assert "anonymous" not in result.stdout and "sshkey" not in result.stdout
    listed = run_tapster(["--help"], cwd=app_dir)
    assert "myserver" in listed.stdout
    help_text = run_tapster(["myserver", "--help"], cwd=app_dir)
    assert "--auth=" in help_text.stdout and "--port=" in help_text.stdout


def test_help_auth_type(app_dir: Path) -> None:
    result = run_tapster(["myserver", "--help-auth-type", "passwd"], cwd=app_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: --auth passwd:FILE")
    assert "shadow" in result.stdout and "unix" in result.stdout
    unsupported = run_tapster(["myserver", "--help-auth-type", "anonymous"], cwd=app_dir)
    assert unsupported.returncode == 0
    assert unsupported.stdout.startswith("Warning: this server cannot use 'anonymous'")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--auth", "bogus:x"], "unknown auth type 'bogus'"),
        (["--auth", "anonymous"], "only takes UsernamePassword"),
        (["--auth", "memory:lonely"], "USER:PASSWORD pairs"),
        (["--auth", "file:/no/such/users"], "no such file: /no/such/users"),
        (["--help-auth-type", "bogus"], "unknown auth type 'bogus'"),
    ],
)
def test_bad_auth_is_a_one_line_usage_error(app_dir: Path, argv: list[str], message: str) -> None:
    result = run_tapster(["myserver", *argv], cwd=app_dir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_passwd_etc_passwd_with_shadow_names_unix(app_dir: Path, tmp_path: Path) -> None:
    shadowed = tmp_path / "passwd"
    shadowed.write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/u:/bin/sh\n")
    result = run_tapster(["myserver", "--auth", f"passwd:{shadowed}"], cwd=app_dir)
    assert result.returncode == 2
    assert "shadow passwords" in result.stderr and "--auth unix" in result.stderr


def test_memory_logins(tapster_proc: object, app_dir: Path) -> None:
    port = start(tapster_proc, app_dir, "memory:alice:wonder:jos\u00e9:caf\u00e9")
    assert login(port, b"alice", b"wonder") == "WELCOME alice@example.test"
    assert login(port, b"alice", b"wrong") == "DENIED"
    assert login(port, b"mallory", b"wonder") == "DENIED"
    # The text rule: UTF-8 bytes from the wire match the command line's text.
    assert login(port, "jos\u00e9".encode(), "caf\u00e9".encode()) == (
        "WELCOME jos\u00e9@example.test"
    )


def test_file_logins_with_reload(tapster_proc: object, app_dir: Path, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(
        f"argon:{argon2_hash('a-pass')}\nsha:{sha512_hash('s-pass')}\n"
        f"crypt:{bcrypt_hash('b-pass')}\nbroken line\n"
    )
    port, proc = start_proc(tapster_proc, app_dir, f"file:{users}")
    assert login(port, b"argon", b"a-pass") == "WELCOME argon@example.test"
    assert login(port, b"sha", b"s-pass") == "WELCOME sha@example.test"
    assert login(port, b"crypt", b"b-pass") == "WELCOME crypt@example.test"
    assert login(port, b"argon", b"s-pass") == "DENIED"
    assert login(port, b"ghost", b"a-pass") == "DENIED"
    # tapster-passwd edits the file; the running server sees it without a restart.
    added = subprocess.run(
        [str(Path(sys.executable).with_name("tapster-passwd")), str(users), "newbie"],
        input=b"fresh\n",
        capture_output=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    assert login(port, b"newbie", b"fresh") == "WELCOME newbie@example.test"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    logged = out + err
    # The bad line is reported once per load (two loads: start-up, after tapster-passwd).
    assert logged.count("line 4: no ':'") == 2, logged
    assert "a-pass" not in logged and "$argon2id$" not in logged and "fresh" not in logged


def test_passwd_file_logins(tapster_proc: object, app_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text(
        f"alice:{sha512_hash('pw1')}:1000:1000:Alice:/home/alice:/bin/sh\n"
        f"bob:{bcrypt_hash('pw2')}:1001:1001:Bob:/home/bob:/bin/sh\n"
        "carol:x:1002:1002:Carol:/home/carol:/bin/sh\n"
    )
    port = start(tapster_proc, app_dir, f"passwd:{path}")
    assert login(port, b"alice", b"pw1") == "WELCOME alice@example.test"
    assert login(port, b"bob", b"pw2") == "WELCOME bob@example.test"
    assert login(port, b"bob", b"pw1") == "DENIED"
    assert login(port, b"carol", b"x") == "DENIED"


def test_htpasswd_logins(tapster_proc: object, app_dir: Path, tmp_path: Path) -> None:
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"pw3").digest()).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{bcrypt_hash('pw1', '2y')}\nbob:{apr1_hash('pw2')}\ncarol:{sha}\n")
    port = start(tapster_proc, app_dir, f"htpasswd:{path}")
    assert login(port, b"alice", b"pw1") == "WELCOME alice@example.test"
    assert login(port, b"bob", b"pw2") == "WELCOME bob@example.test"
    assert login(port, b"carol", b"pw3") == "WELCOME carol@example.test"
    assert login(port, b"carol", b"pw2") == "DENIED"


@pytest.fixture
def unix_user() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to create a test account")
    name = f"tape2e{os.getpid() % 100000}"
    password = "unix e2e pass"
    subprocess.run(["userdel", name], capture_output=True, check=False)
    subprocess.run(
        ["useradd", "--no-create-home", "-p", sha512_hash(password), name],
        check=True,
        capture_output=True,
    )
    try:
        yield name, password
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


def test_unix_logins(tapster_proc: object, app_dir: Path, unix_user: tuple[str, str]) -> None:
    name, password = unix_user
    port = start(tapster_proc, app_dir, "unix")
    assert login(port, name.encode(), password.encode()) == f"WELCOME {name}@example.test"
    assert login(port, name.encode(), b"wrong") == "DENIED"
    assert login(port, b"root", b"") == "DENIED"
    assert login(port, b"no-such-account", password.encode()) == "DENIED"


def test_several_auth_options_together(tapster_proc: object, app_dir: Path, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"filed:{argon2_hash('f')}\n")
    port = start(tapster_proc, app_dir, "memory:mem:m", f"file:{users}")
    assert login(port, b"mem", b"m") == "WELCOME mem@example.test"
    assert login(port, b"filed", b"f") == "WELCOME filed@example.test"
    assert login(port, b"filed", b"m") == "DENIED"
