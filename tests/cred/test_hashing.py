"""Password hash schemes: our own crypt code against reference implementations."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import warnings

import argon2
import bcrypt
import pytest

from tapster.cred import hashing
from tapster.cred._crypt import md5_crypt, sha_crypt
from tapster.cred.credentials import text

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt as stdlib_crypt
    except ImportError:  # Python 3.13+
        stdlib_crypt = None  # type: ignore[assignment]

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
needs_crypt = pytest.mark.skipif(stdlib_crypt is None, reason="no crypt module")

PASSWORDS = ["", "a", "secret", "Hello world!", "p\u00e4ssw\u00f6rd \u00e9", "x" * 80]


def openssl_passwd(*args: str) -> str:
    return subprocess.run(
        ["openssl", "passwd", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@needs_openssl
@pytest.mark.parametrize("password", [p for p in PASSWORDS if p])
@pytest.mark.parametrize("flag", ["-5", "-6"])
def test_sha_crypt_matches_openssl(flag: str, password: str) -> None:
    reference = openssl_passwd(flag, "-salt", "saltstring16char", password)
    assert sha_crypt(password.encode(), reference) == reference
    assert hashing.verify_password(password, reference)
    assert not hashing.verify_password(password + "!", reference)


@needs_openssl
@pytest.mark.parametrize("password", [p for p in PASSWORDS if p])
def test_apr1_matches_openssl(password: str) -> None:
    reference = openssl_passwd("-apr1", "-salt", "abcdefgh", password)
    assert md5_crypt(password.encode(), reference) == reference
    assert hashing.identify(reference) == "apr1"
    assert hashing.verify_password(password, reference)
    assert not hashing.verify_password(password[:-1], reference)
    md5 = openssl_passwd("-1", "-salt", "abcdefgh", password)
    assert md5_crypt(password.encode(), md5) == md5


@needs_crypt
@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    "setting",
    [
        "$6$saltstring",
        "$5$saltstring",
        "$6$rounds=1000$short",
        "$5$rounds=12345$abc",
        "$1$12345678",
    ],
)
def test_crypt_schemes_match_stdlib_crypt(setting: str, password: str) -> None:
    reference = stdlib_crypt.crypt(password, setting)
    compute = md5_crypt if setting.startswith("$1$") else sha_crypt
    assert compute(password.encode(), reference) == reference


def test_fixed_crypt_vectors() -> None:
    # Fixed vectors (made with glibc's crypt and openssl), so the check also
    # runs where neither is available.
    assert (
        sha_crypt(b"Hello world!", "$5$saltstring")
        == "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
    )
    assert (
        sha_crypt(b"Hello world!", "$5$rounds=5000$toolongsaltstring")
        == "$5$rounds=5000$toolongsaltstrin$0vuwUia3Nx9V/DqToMS8YLcfXpEXmSaC8wgguLIbus2"
    )
    assert (
        md5_crypt(b"Hello world!", "$apr1$rasmuslerdorf") == "$apr1$rasmusle$GwqTRZuYefa9GeMEcDI.w0"
    )
    assert sha_crypt(b"Hello world!", "$6$saltstring") == (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu"
        "esI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    )
    assert sha_crypt(b"Hello world!", "$6$rounds=10000$saltstringsaltstring") == (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/Urj"
        "mM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."
    )


def test_sha_crypt_clamps_rounds() -> None:
    low = sha_crypt(b"pw", "$6$rounds=10$salt")
    assert low.startswith("$6$rounds=1000$salt$")
    assert hashing.verify_password("pw", low)


@pytest.mark.parametrize("scheme", hashing.HASH_SCHEMES)
def test_every_scheme_round_trips(scheme: str) -> None:
    """Full default cost: what tapster-passwd writes is what the checkers read."""
    stored = hashing.hash_password("correct horse", scheme)
    assert hashing.identify(stored) is not None
    assert hashing.check_format(stored) is None
    assert hashing.verify_password(b"correct horse", stored)
    assert not hashing.verify_password("correct horsE", stored)


CHEAP_HASHES = {
    "argon2": lambda: argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(
        "pw"
    ),
    "bcrypt": lambda: bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode(),
    "scrypt": lambda: _scrypt_hash(b"pw", ln=10),
    "pbkdf2": lambda: (
        "$pbkdf2-sha256$2000$c2FsdHNhbHQ$"
        + base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"pw", b"saltsalt", 2000))
        .decode()
        .rstrip("=")
    ),
    "sha512-crypt": lambda: sha_crypt(b"pw", "$6$rounds=2000$abcdefgh"),
    "sha256-crypt": lambda: sha_crypt(b"pw", "$5$saltsalt"),
    "md5-crypt": lambda: md5_crypt(b"pw", "$1$saltsalt"),
    "apr1": lambda: md5_crypt(b"pw", "$apr1$saltsalt"),
    "sha1": lambda: "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode(),
}


def _scrypt_hash(secret: bytes, ln: int) -> str:
    salt = b"0123456789abcdef"
    key = hashlib.scrypt(secret, salt=salt, n=1 << ln, r=8, p=1, dklen=32)
    b64 = base64.b64encode
    return f"$scrypt$ln={ln},r=8,p=1${b64(salt).decode()}${b64(key).decode()}"


@pytest.mark.parametrize("scheme", sorted(CHEAP_HASHES))
def test_dummy_has_same_scheme_and_cost(scheme: str) -> None:
    stored = CHEAP_HASHES[scheme]()
    assert hashing.identify(stored) == scheme
    assert hashing.verify_password("pw", stored)
    dummy = hashing.dummy_like(stored)
    assert hashing.identify(dummy) == scheme and dummy != stored
    assert not hashing.verify_password("pw", dummy)
    for marker in ("rounds=2000$", "$2b$05$", "ln=10,", "$2000$"):
        if marker in stored:
            assert marker in dummy


def test_default_scheme_is_argon2id() -> None:
    stored = hashing.hash_password("pw")
    assert stored.startswith("$argon2id$")


def test_argon2_dummy_keeps_cost_parameters() -> None:
    stored = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw")
    dummy = hashing.dummy_like(stored)
    assert argon2.extract_parameters(dummy) == argon2.extract_parameters(stored)


def test_bcrypt_variants_and_72_byte_limit() -> None:
    long = b"y" * 72
    stored = bcrypt.hashpw(long, bcrypt.gensalt(4)).decode()
    assert hashing.verify_password(long + b"ignored by bcrypt", stored)
    two_y = bcrypt.hashpw(b"pw", bcrypt.gensalt(4, prefix=b"2a")).decode().replace("$2a$", "$2y$")
    assert hashing.identify(two_y) == "bcrypt"
    assert hashing.verify_password("pw", two_y)
    assert hashing.dummy_like(two_y).startswith("$2b$04$")
    with pytest.raises(ValueError, match="72 bytes"):
        hashing.hash_password("z" * 73, "bcrypt")


def test_pbkdf2_formats() -> None:
    salt = b"0123456789abcdef"
    key = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 1000)
    ab64 = base64.b64encode
    passlib_style = (
        f"$pbkdf2-sha256$1000${ab64(salt).decode().rstrip('=').replace('+', '.')}"
        f"${ab64(key).decode().rstrip('=').replace('+', '.')}"
    )
    assert hashing.verify_password("pw", passlib_style)
    assert not hashing.verify_password("pW", passlib_style)
    django_key = ab64(hashlib.pbkdf2_hmac("sha256", b"pw", b"saltsalt", 1000)).decode()
    django = f"pbkdf2_sha256$1000$saltsalt${django_key}"
    assert hashing.verify_password("pw", django)
    assert not hashing.verify_password("px", django)
    assert hashing.identify(hashing.dummy_like(django)) == "pbkdf2"


def test_scrypt_reference() -> None:
    salt = b"NaCl-and-pepper!"
    key = hashlib.scrypt(b"pw", salt=salt, n=1024, r=8, p=1, dklen=32)
    stored = (
        f"$scrypt$ln=10,r=8,p=1${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    )
    assert hashing.verify_password("pw", stored)
    assert not hashing.verify_password("pw2", stored)


def test_apache_sha1() -> None:
    stored = "{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    assert hashing.identify(stored) == "sha1"
    assert "sha1" in hashing.WEAK_SCHEMES
    assert hashing.verify_password("secret", stored)
    assert not hashing.verify_password("Secret", stored)


def test_non_utf8_password_bytes_round_trip() -> None:
    raw = b"\xff\xfe caf\xe9"
    stored = hashing.hash_password(raw, "sha512-crypt")
    assert hashing.verify_password(text(raw), stored)
    assert hashing.verify_password(raw, stored)
    assert not hashing.verify_password(raw.decode("latin-1"), stored)


@pytest.mark.parametrize("locked", ["", "x", "*", "!", "!$6$abc$def", "*LK*"])
def test_locked_entries_never_verify(locked: str) -> None:
    assert hashing.is_locked(locked)
    assert not hashing.verify_password("", locked)


@pytest.mark.parametrize(
    "junk", ["plaintext", "$9$nope$", "$scrypt$ln=99,r=8,p=1$aa$bb", "{SHA}###"]
)
def test_unknown_or_malformed_hashes_raise(junk: str) -> None:
    with pytest.raises(hashing.UnknownHashError):
        hashing.verify_password("pw", junk)


def test_worker_pool_runs_off_the_loop() -> None:
    import asyncio
    import threading

    async def main() -> str:
        return await hashing.run_in_worker(lambda: threading.current_thread().name)

    assert asyncio.run(main()).startswith("tapster-hash")
    with pytest.raises(ValueError):
        hashing.set_worker_count(0)


needs_libcrypt = pytest.mark.skipif(hashing._libcrypt() is None, reason="no system libcrypt")


@needs_libcrypt
def test_libcrypt_and_pure_python_agree() -> None:
    import secrets

    for _ in range(60):
        password = secrets.token_bytes(secrets.randbelow(40)).replace(b"\0", b"z")
        for setting in ("$6$" + secrets.token_hex(6), "$5$rounds=1500$" + secrets.token_hex(8)):
            assert hashing._call_libcrypt(password, setting) == sha_crypt(password, setting)
        md5 = "$1$" + secrets.token_hex(4)
        assert hashing._call_libcrypt(password, md5) == md5_crypt(password, md5)


def test_pure_python_path_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "USE_LIBCRYPT", False)
    stored = hashing.hash_password("pw", "sha512-crypt")
    assert hashing.verify_password("pw", stored)
    assert not hashing.verify_password("pW", stored)
    md5 = md5_crypt(b"pw", "$1$saltsalt")
    assert hashing.verify_password("pw", md5) and not hashing.verify_password("px", md5)


def test_workers_run_at_lower_priority() -> None:
    import asyncio
    import os
    import threading

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def main() -> int:
        return await hashing.run_in_worker(nice)

    assert asyncio.run(main()) > nice()


@pytest.mark.parametrize("scheme", sorted(set(CHEAP_HASHES) - {"argon2"}))
def test_check_format_accepts_good_and_flags_truncated(scheme: str) -> None:
    # argon2 encodes any hash length, so a cut-short one cannot be told apart.
    stored = CHEAP_HASHES[scheme]()
    assert hashing.check_format(stored) is None
    reason = hashing.check_format(stored[:-5])
    assert reason is not None and scheme in reason and stored not in reason


def test_check_format_unknown_and_locked() -> None:
    assert "unrecognised password hash" in (hashing.check_format("hunter2") or "")
    assert hashing.check_format("!") is None
