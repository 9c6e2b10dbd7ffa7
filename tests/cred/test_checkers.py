"""Every checker, with real hashes, real files and (as root) a real system account."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import argon2
import pytest
from cred.credtools import apr1_hash, argon2_hash, bcrypt_hash, run, sha512_hash

from tapster.cred import credentials as creds
from tapster.cred import strcred
from tapster.cred._files import MAX_PASSWORD_FILE_SIZE, UnsafeFileError
from tapster.cred.checkers import (
    ANONYMOUS,
    AllowAnonymousAccess,
    AuthorizedKeysChecker,
    InMemoryUsernamePasswordChecker,
    PasswordFileChecker,
    UnixAccountChecker,
    parse_authorized_keys,
)
from tapster.cred.credentials import Anonymous, SSHPrivateKey, UsernamePassword
from tapster.cred.errors import BadAuthArgumentsError, UnauthorizedLogin, ValidPublicKey


def login(checker: object, user: str | bytes, password: str | bytes) -> str | None:
    async def attempt() -> str | None:
        try:
            result = await checker.request_avatar_id(UsernamePassword(user, password))  # type: ignore[attr-defined]
        except UnauthorizedLogin:
            return None
        assert isinstance(result, str)
        return result

    return run(attempt())


# --------------------------------------------------------------------------- text rule


def test_text_rule_bytes_and_str_agree() -> None:
    assert UsernamePassword(b"jos\xc3\xa9", b"pw") == UsernamePassword("jos\u00e9", "pw")
    odd = UsernamePassword(b"\xff", b"\xfe\xfd")
    assert odd.password_bytes == b"\xfe\xfd"
    assert "\xfe" not in repr(odd) and "password" not in repr(odd)
    assert creds.from_command_line(os.fsdecode(b"jos\xc3\xa9")) == "jos\u00e9"
    assert creds.from_command_line(os.fsdecode(b"\xff")) == creds.text(b"\xff")
    with pytest.raises(TypeError):
        creds.text(12)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- memory


def test_memory_checker() -> None:
    checker = InMemoryUsernamePasswordChecker({"alice": "wonder", "jos\u00e9": b"caf\xc3\xa9"})
    assert login(checker, "alice", "wonder") == "alice"
    assert login(checker, b"alice", b"wonder") == "alice"
    assert login(checker, "alice", "wonder!") is None
    assert login(checker, "bob", "wonder") is None
    assert login(checker, b"jos\xc3\xa9", b"caf\xc3\xa9") == "jos\u00e9"
    assert login(checker, "jos\u00e9", "caf\u00e9") == "jos\u00e9"
    assert checker.users == ["alice", "jos\u00e9"]


def test_memory_checker_refuses_other_credentials() -> None:
    checker = InMemoryUsernamePasswordChecker({"a": "b"})
    with pytest.raises(UnauthorizedLogin):
        run(checker.request_avatar_id(Anonymous()))


# --------------------------------------------------------------------------- files


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    path.write_text(
        "# tapster users\n"
        f"argon:{argon2_hash('a-pass')}\n"
        "\n"
        f"crypt:{bcrypt_hash('b-pass')}\n"
        f"sha:{sha512_hash('s-pass')}\n"
        f"apache:{apr1_hash('m-pass')}\n"
        f"locked:!{sha512_hash('l-pass')}\n"
    )
    return path


def test_password_file_every_scheme(pwfile: Path) -> None:
    checker = PasswordFileChecker(pwfile)
    assert login(checker, "argon", "a-pass") == "argon"
    assert login(checker, "crypt", "b-pass") == "crypt"
    assert login(checker, "sha", "s-pass") == "sha"
    assert login(checker, "apache", "m-pass") == "apache"
    assert login(checker, "argon", "b-pass") is None
    assert login(checker, "locked", "l-pass") is None
    assert login(checker, "nobody-here", "a-pass") is None
    assert checker.problems == []


def _touch_later(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:  # coarse clocks: force a visible change
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_password_file_reloads_on_change(pwfile: Path) -> None:
    checker = PasswordFileChecker(pwfile)
    assert login(checker, "newbie", "n-pass") is None
    loads = checker.load_count
    assert login(checker, "argon", "a-pass") == "argon"
    assert checker.load_count == loads  # unchanged file: not re-read
    _touch_later(pwfile, f"newbie:{sha512_hash('n-pass')}\n")
    assert login(checker, "newbie", "n-pass") == "newbie"
    assert login(checker, "argon", "a-pass") is None
    assert checker.load_count == loads + 1


def test_bad_line_reported_once_good_lines_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_hash = sha512_hash("good")
    path = tmp_path / "users"
    path.write_text(
        f"good:{secret_hash}\n"
        "no colon here\n"
        "plain:hunter2\n"
        ":emptyname\n"
        f"good:{sha512_hash('other')}\n"
        f"cut:{sha512_hash('cut')[:-4]}\n"
    )
    path.chmod(0o600)
    caplog.set_level(logging.WARNING, logger="tapster.cred")
    checker = PasswordFileChecker(path)
    for _ in range(3):
        assert login(checker, "good", "good") == "good"
        assert login(checker, "plain", "hunter2") is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5, messages
    assert any("line 2" in m and "no ':'" in m for m in messages)
    assert any("line 3" in m and "unrecognised password hash" in m for m in messages)
    assert any("line 4" in m and "empty user name" in m for m in messages)
    assert any("line 5" in m and "already defined on line 1" in m for m in messages)
    assert any("line 6" in m and "malformed sha512-crypt hash" in m for m in messages)
    assert all(str(path) in m for m in messages)
    text = caplog.text
    assert "hunter2" not in text and secret_hash not in text


def test_weak_hash_warning_names_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stored = apr1_hash("pw")
    sha = "{SHA}" + base64.b64encode(__import__("hashlib").sha1(b"pw2").digest()).decode()
    path = tmp_path / "htpasswd"
    path.write_text(f"ap:{stored}\nsh:{sha}\nbc:{bcrypt_hash('pw3', '2y')}\n")
    path.chmod(0o600)
    caplog.set_level(logging.WARNING, logger="tapster.cred")
    checker = PasswordFileChecker(path, "htpasswd")
    assert login(checker, "ap", "pw") == "ap"
    assert login(checker, "sh", "pw2") == "sh"
    assert login(checker, "bc", "pw3") == "bc"
    weak = [r.getMessage() for r in caplog.records if "weak password hash" in r.getMessage()]
    assert len(weak) == 2
    assert stored not in caplog.text and sha not in caplog.text


def test_passwd_format(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text(
        f"alice:{sha512_hash('pw')}:1000:1000:Alice:/home/alice:/bin/sh\n"
        "shadowed:x:1001:1001::/home/s:/bin/sh\n"
        "nopass::1002:1002::/:/bin/sh\n"
    )
    checker = PasswordFileChecker(path, "passwd")
    assert login(checker, "alice", "pw") == "alice"
    assert login(checker, "shadowed", "x") is None
    assert login(checker, "nopass", "") is None
    assert checker.shadowed == 1


def test_missing_file_fails_at_start_and_vanishing_file_refuses(pwfile: Path) -> None:
    with pytest.raises(FileNotFoundError):
        PasswordFileChecker(pwfile.with_name("absent"))
    checker = PasswordFileChecker(pwfile)
    pwfile.unlink()
    assert login(checker, "argon", "a-pass") is None


# --------------------------------------------------------------------------- unix


@pytest.fixture
def unix_user() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to create a test account")
    name = f"tapcred{os.getpid() % 100000}"
    password = "unix-pass"
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


def test_unix_checker(unix_user: tuple[str, str]) -> None:
    name, password = unix_user
    checker = UnixAccountChecker()
    assert login(checker, name, password) == name
    assert login(checker, name, password + "x") is None
    assert login(checker, "no-such-user-here", password) is None
    assert login(checker, "root:0", password) is None


# --------------------------------------------------------------------------- anonymous


def test_anonymous_checker() -> None:
    checker = AllowAnonymousAccess()
    assert run(checker.request_avatar_id(Anonymous())) is ANONYMOUS
    with pytest.raises(UnauthorizedLogin):
        run(checker.request_avatar_id(UsernamePassword("a", "b")))


# --------------------------------------------------------------------------- ssh keys


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _ssh_key_and_signer(kind: str) -> tuple[str, bytes, object]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key: object
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    line = (
        key.public_key()  # type: ignore[attr-defined]
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    blob = base64.b64decode(line.split()[1])

    def sign(data: bytes) -> bytes:
        if kind == "ed25519":
            return _ssh_string(b"ssh-ed25519") + _ssh_string(key.sign(data))  # type: ignore[attr-defined]
        if kind == "rsa":
            raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]
            return _ssh_string(b"rsa-sha2-256") + _ssh_string(raw)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))  # type: ignore[attr-defined]
        mpint = _ssh_string(r.to_bytes(33, "big")) + _ssh_string(s.to_bytes(33, "big"))
        return _ssh_string(b"ecdsa-sha2-nistp256") + _ssh_string(mpint)

    return line, blob, sign


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_authorized_keys_checker(tmp_path: Path, kind: str) -> None:
    pytest.importorskip("cryptography")
    line, blob, sign = _ssh_key_and_signer(kind)
    _, other_blob, _ = _ssh_key_and_signer("ed25519")
    keys = tmp_path / "alice.keys"
    keys.write_text(f'# keys\ncommand="echo hi",no-pty {line} alice@laptop\n')
    checker = AuthorizedKeysChecker(lambda user: [tmp_path / f"{user}.keys"])
    algorithm = line.split()[0]
    data = b"session-id and request"

    def attempt(user: str, key_blob: bytes, signature: bytes | None) -> object:
        cred = SSHPrivateKey(user, algorithm, key_blob, data if signature else None, signature)
        try:
            return run(checker.request_avatar_id(cred))
        except UnauthorizedLogin as exc:
            return type(exc)

    assert attempt("alice", blob, sign(data)) == "alice"  # type: ignore[operator]
    assert attempt("alice", blob, None) is ValidPublicKey
    assert attempt("alice", blob, sign(b"something else")) is UnauthorizedLogin  # type: ignore[operator]
    assert attempt("alice", other_blob, None) is UnauthorizedLogin
    assert attempt("bob", blob, sign(data)) is UnauthorizedLogin  # type: ignore[operator]


def test_parse_authorized_keys_skips_junk() -> None:
    blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519key").decode()
    data = f"\n# comment\nssh-ed25519 {blob} me\nssh-rsa !!!notbase64 x\ngarbage\n"
    assert parse_authorized_keys(data) == [base64.b64decode(blob)]


def test_file_checker_hashes_off_the_loop(tmp_path: Path) -> None:
    """While a slow hash is checked, the loop runs on: a ticker every 2 ms keeps ticking.

    Hashed on the loop, the ticker would stop for the whole login (the gap would be
    as long as the login); in the pool, its gaps stay a small part of it.
    """
    slow = argon2.PasswordHasher(time_cost=4, memory_cost=65536, parallelism=1)
    path = tmp_path / "users"
    path.write_text(f"slow:{slow.hash('pw')}\n")
    checker = PasswordFileChecker(path)

    async def measure() -> tuple[object, float, float]:
        ticks: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.002)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        avatar = await checker.request_avatar_id(UsernamePassword("slow", "pw"))
        took = time.perf_counter() - start
        await asyncio.sleep(0.02)  # the ticks after the login: a stall shows as a gap
        done.set()
        await task
        gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
        return avatar, took, max(gaps)

    avatar, took, gap = run(measure())
    assert avatar == "slow"
    assert took > 0.1, "the hash is too fast to show where it ran"
    assert gap < took / 2, f"the loop stood still for {gap:.3f} s of a {took:.3f} s login"


def test_text_rule_round_trips_any_bytes() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=64))
    def round_trip(raw: bytes) -> None:
        assert creds.to_bytes(creds.text(raw)) == raw
        assert UsernamePassword(raw, raw) == UsernamePassword(creds.text(raw), creds.text(raw))
        assert creds.from_command_line(os.fsdecode(raw)) == creds.text(raw)

    round_trip()


def test_unix_checker_without_spwd(
    unix_user: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.13 has no spwd: the checker reads /etc/shadow itself."""
    import sys

    monkeypatch.setitem(sys.modules, "spwd", None)  # import spwd -> ImportError
    name, password = unix_user
    checker = UnixAccountChecker()
    assert login(checker, name, password) == name
    assert login(checker, name, "nope") is None


def test_world_readable_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users"
    path.write_text(f"u:{sha512_hash('p')}\n")
    caplog.set_level(logging.WARNING, logger="tapster.cred")
    os.chmod(path, 0o600)
    PasswordFileChecker(path)
    assert "every local user can read" not in caplog.text
    os.chmod(path, 0o644)
    PasswordFileChecker(path)
    assert "every local user can read" in caplog.text


def test_logins_during_rewrites_never_error(tmp_path: Path) -> None:
    """Workers reload the file while others check passwords: no exception, no torn state."""
    import asyncio
    import threading

    from tapster.cred.passwd_tool import update_file

    path = tmp_path / "users"
    update_file(path, "steady", sha512_hash("s"))
    checker = PasswordFileChecker(path)
    stop = threading.Event()

    def rewrite() -> None:
        i = 0
        while not stop.is_set():
            update_file(path, f"churn{i % 3}", sha512_hash(f"c{i}"))
            i += 1

    async def main() -> list[object]:
        attempts = [checker.request_avatar_id(UsernamePassword("steady", "s")) for _ in range(60)]
        return await asyncio.gather(*attempts, return_exceptions=True)

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        results = asyncio.run(main())
    finally:
        stop.set()
        writer.join()
    assert results == ["steady"] * 60
    assert checker.load_count > 1


# --------------------------------------------------------------------------- unusable files


def _fifo_feeder(path: Path) -> None:
    """Release a reader that an old, blocking open of the pipe ``path`` left stuck."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _in_a_thread(path: Path, action: Callable[[], object]) -> object:
    """Run ``action`` with a deadline; a pipe it hangs on is released and the test fails."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(action())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        while thread.is_alive():
            _fifo_feeder(path)
            thread.join(0.1)
        pytest.fail(f"hung on the named pipe {path}")
    return outcome[0]


@pytest.mark.parametrize("file_format", ["file", "htpasswd", "passwd"])
def test_a_named_pipe_is_refused_at_start_without_hanging(tmp_path: Path, file_format: str) -> None:
    fifo = tmp_path / "users"
    os.mkfifo(fifo)
    result = _in_a_thread(fifo, lambda: PasswordFileChecker(fifo, file_format))  # type: ignore[arg-type]
    assert isinstance(result, UnsafeFileError), result
    assert result.strerror == "it is a named pipe, not a regular file"
    result = _in_a_thread(fifo, lambda: strcred.make_checker(f"{file_format}:{fifo}"))
    assert isinstance(result, BadAuthArgumentsError), result
    assert str(result) == f"cannot read {fifo}: it is a named pipe, not a regular file"


def test_a_device_is_refused_at_start(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    device = tmp_path / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null: empty
    link = tmp_path / "users"
    link.symlink_to(device)
    for path in (device, link):
        with pytest.raises(BadAuthArgumentsError, match="it is a character device"):
            strcred.make_checker(f"htpasswd:{path}")


def test_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    """In a child with 1 GiB of address space, so that a reader of /dev/zero dies quickly."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from tapster.cred import strcred\n"
        "from tapster.cred.errors import BadAuthArgumentsError\n"
        "try:\n"
        "    strcred.make_checker('file:/dev/zero')\n"
        "except BadAuthArgumentsError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "cannot read /dev/zero: it is a character device, not a regular file\n"


def test_size_cap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Up to MAX_PASSWORD_FILE_SIZE is read; a larger file is refused at start and on reload."""
    big = tmp_path / "big"
    with big.open("wb") as f:
        f.truncate(MAX_PASSWORD_FILE_SIZE + 1)  # sparse: costs no disk
    with pytest.raises(BadAuthArgumentsError, match=r"larger than 10 MiB"):
        strcred.make_checker(f"file:{big}")

    path = tmp_path / "users"
    line = f"alice:{sha512_hash('pw')}\n".encode()
    path.write_bytes(line + b"#" * (MAX_PASSWORD_FILE_SIZE - len(line) - 1) + b"\n")
    checker = PasswordFileChecker(path)
    assert login(checker, "alice", "pw") == "alice"
    caplog.set_level(logging.ERROR, logger="tapster.cred")
    with path.open("ab") as f:
        f.write(b"#\n")
    assert login(checker, "alice", "pw") is None
    assert login(checker, "alice", "pw") is None
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"{path}: cannot read password file (it is larger than 10 MiB, far too large "
        "for a password file); refusing all logins"
    ]


def test_a_pipe_swapped_in_later_refuses_logins_without_hanging(
    pwfile: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checker = PasswordFileChecker(pwfile)
    assert login(checker, "sha", "s-pass") == "sha"
    caplog.set_level(logging.ERROR, logger="tapster.cred")
    fifo = pwfile.with_name("fifo")
    os.mkfifo(fifo)
    saved = pwfile.read_bytes()
    os.replace(fifo, pwfile)
    assert _in_a_thread(pwfile, lambda: login(checker, "sha", "s-pass")) is None
    assert _in_a_thread(pwfile, lambda: login(checker, "sha", "s-pass")) is None
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"{pwfile}: cannot read password file (it is a named pipe, not a regular file); "
        "refusing all logins"
    ]
    pwfile.unlink()
    pwfile.write_bytes(saved)
    assert login(checker, "sha", "s-pass") == "sha"


def test_authorized_keys_in_a_pipe_are_skipped_without_hanging(tmp_path: Path) -> None:
    """A named pipe where a key file should be counts as no keys; the next file still works."""
    pytest.importorskip("cryptography")
    line, blob, sign = _ssh_key_and_signer("ed25519")
    fifo = tmp_path / "alice.pipe"
    os.mkfifo(fifo)
    (tmp_path / "alice.keys").write_text(f"{line}\n")
    checker = AuthorizedKeysChecker(lambda user: [fifo, tmp_path / f"{user}.keys"])
    data = b"session"
    cred = SSHPrivateKey("alice", "ssh-ed25519", blob, data, sign(data))  # type: ignore[operator]
    assert _in_a_thread(fifo, lambda: run(checker.request_avatar_id(cred))) == "alice"
