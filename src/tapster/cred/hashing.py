"""Password hashes: make them, recognise them, verify them off the event loop.

New hashes are argon2id (argon2-cffi's RFC 9106 low-memory profile). Stored
hashes in these formats are verified:

=================  =========================================  ==========
scheme             looks like                                 note
=================  =========================================  ==========
``argon2``         ``$argon2id$v=19$m=...``                   default
``bcrypt``         ``$2b$12$...`` (also ``$2a$``, ``$2y$``)
``scrypt``         ``$scrypt$ln=15,r=8,p=1$salt$hash``
``pbkdf2``         ``$pbkdf2-sha256$rounds$salt$hash``,
                   Django's ``pbkdf2_sha256$rounds$salt$hash``
``sha512-crypt``   ``$6$[rounds=N$]salt$hash``                 libcrypt or Python
``sha256-crypt``   ``$5$[rounds=N$]salt$hash``                 libcrypt or Python
``md5-crypt``      ``$1$salt$hash``                           weak
``apr1``           ``$apr1$salt$hash`` (Apache)               weak
``sha1``           ``{SHA}base64`` (Apache)                   weak
``crypt``          anything else libcrypt knows (``$y$``       via libcrypt
                   yescrypt, 13-character DES)
=================  =========================================  ==========

Every comparison is constant-time. :func:`dummy_like` makes a hash of a
random secret with the same scheme and cost as a real one, so that checkers
can spend the same time on an unknown user as on a wrong password.

SHA-crypt and MD5-crypt are computed in pure Python (:mod:`._crypt`), so they
work where Python has no ``crypt`` module; when the system has a libcrypt,
it is used instead through ctypes (same result, faster, without the GIL).

Hashing is slow on purpose, so :func:`run_in_worker` runs it in a small,
bounded pool of lower-priority threads that leave one CPU to the event loop:
the loop never waits for a hash, and a flood of logins queues up instead of
starting a thread each.
Nothing here logs a password or a hash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ctypes
import ctypes.util
import functools
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

import argon2
import bcrypt

from tapster.cred._crypt import CryptFormatError, md5_crypt, sha_crypt
from tapster.cred.credentials import to_bytes

__all__ = [
    "DEFAULT_SCHEME",
    "HASH_SCHEMES",
    "WEAK_SCHEMES",
    "UnknownHashError",
    "check_format",
    "default_worker_count",
    "dummy_like",
    "hash_password",
    "identify",
    "is_locked",
    "run_in_worker",
    "set_worker_count",
    "verify_password",
    "verify_password_async",
]

T = TypeVar("T")

DEFAULT_SCHEME: Final = "argon2id"
#: Schemes :func:`hash_password` can create.
HASH_SCHEMES: Final = (
    "argon2id",
    "bcrypt",
    "scrypt",
    "pbkdf2-sha256",
    "sha512-crypt",
    "sha256-crypt",
)
#: Schemes that are verified but deserve a warning: fast, unsalted or MD5/SHA-1.
WEAK_SCHEMES: Final = frozenset({"md5-crypt", "apr1", "sha1", "crypt-des"})

#: Verify ``$1$``/``$5$``/``$6$`` with the system's libcrypt when it has one
#: (faster, parallel); ``False`` forces the pure-Python implementation.
USE_LIBCRYPT = True

_BCRYPT_MAX = 72
_DES_RE = re.compile(r"[./0-9A-Za-z]{13}\Z")
_SCRYPT_RE = re.compile(r"\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([^$]+)\$([^$]+)\Z")
_PBKDF2_RE = re.compile(r"\$pbkdf2(?:-(sha256|sha512))?\$(\d+)\$([^$]+)\$([^$]+)\Z")
_DJANGO_PBKDF2_RE = re.compile(r"pbkdf2_(sha1|sha256)\$(\d+)\$([^$]+)\$([^$]+)\Z")
_SCRYPT_MAX_LN = 20
_PBKDF2_MAX_ROUNDS = 10_000_000


class UnknownHashError(ValueError):
    """A stored string is not a hash in any format tapster can verify."""


def identify(stored: str) -> str | None:
    """Name the scheme of a stored hash, or ``None`` when it is not recognised."""
    if stored.startswith("$argon2"):
        return "argon2"
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        return "bcrypt"
    if stored.startswith("$scrypt$"):
        return "scrypt"
    if _PBKDF2_RE.match(stored) or _DJANGO_PBKDF2_RE.match(stored):
        return "pbkdf2"
    if stored.startswith("$6$"):
        return "sha512-crypt"
    if stored.startswith("$5$"):
        return "sha256-crypt"
    if stored.startswith("$1$"):
        return "md5-crypt"
    if stored.startswith("$apr1$"):
        return "apr1"
    if stored.startswith("{SHA}"):
        return "sha1"
    if _DES_RE.match(stored):
        return "crypt-des" if _libcrypt() is not None else None
    if stored.startswith(("$y$", "$gy$", "$7$", "$sha1$", "$md5")) and _libcrypt() is not None:
        return "crypt"
    return None


_SHAPES: dict[str, re.Pattern[str]] = {
    "bcrypt": re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}\Z"),
    "sha512-crypt": re.compile(r"\$6\$(rounds=\d+\$)?[^$:\s]{0,16}\$[./0-9A-Za-z]{86}\Z"),
    "sha256-crypt": re.compile(r"\$5\$(rounds=\d+\$)?[^$:\s]{0,16}\$[./0-9A-Za-z]{43}\Z"),
    "md5-crypt": re.compile(r"\$1\$[^$:\s]{0,8}\$[./0-9A-Za-z]{22}\Z"),
    "apr1": re.compile(r"\$apr1\$[^$:\s]{0,8}\$[./0-9A-Za-z]{22}\Z"),
    "sha1": re.compile(r"\{SHA\}[A-Za-z0-9+/]{27}=\Z"),
    "scrypt": _SCRYPT_RE,
}


def check_format(stored: str) -> str | None:
    """Why ``stored`` cannot be verified (one short phrase), or ``None`` if it looks right.

    Cheap: checks the shape of the string, never computes a hash. Password
    files use it to report a truncated or mangled hash when they load, rather
    than failing that user's logins silently.
    """
    if is_locked(stored):
        return None
    scheme = identify(stored)
    if scheme is None:
        return (
            "unrecognised password hash "
            "(expected argon2, bcrypt, scrypt, pbkdf2, $5$/$6$ crypt, $apr1$ or {SHA})"
        )
    shape = _SHAPES.get(scheme)
    if shape is not None and not shape.match(stored):
        return f"malformed {scheme} hash (truncated or changed?)"
    try:
        if scheme == "argon2":
            argon2.extract_parameters(stored)
        elif scheme in ("scrypt", "pbkdf2"):
            head, *_, salt, key = stored.split("$")
            if stored.startswith("$"):  # Django's salt is plain text
                _b64decode(salt)
            # Key sizes every writer of these formats uses: the digest size for
            # PBKDF2, 32 or 64 bytes for scrypt. Anything else was cut short.
            digest = "sha1" if stored.startswith(("$pbkdf2$", "pbkdf2_sha1$")) else "sha256"
            if "sha512" in stored.split("$")[1] + head:
                digest = "sha512"
            sizes = (32, 64) if scheme == "scrypt" else (hashlib.new(digest).digest_size,)
            if len(_b64decode(key)) not in sizes:
                raise ValueError("unexpected key length")
    except (argon2.exceptions.InvalidHashError, ValueError, binascii.Error):
        return f"malformed {scheme} hash (truncated or changed?)"
    return None


def is_locked(stored: str) -> bool:
    """True for account-lock markers (``!...``, ``*``, ``x``, empty): no password works."""
    return stored in ("", "x", "*") or stored.startswith(("!", "*"))


# --------------------------------------------------------------------------- verify


def verify_password(password: str | bytes, stored: str) -> bool:
    """Check ``password`` against ``stored`` (blocking; see :func:`verify_password_async`).

    Returns ``False`` for a wrong password and for a locked entry. Raises
    :class:`UnknownHashError` when ``stored`` is in no known format.
    """
    secret = to_bytes(password)
    if is_locked(stored):
        return False
    scheme = identify(stored)
    if scheme is None:
        raise UnknownHashError("unrecognised password hash format")
    try:
        return _VERIFIERS[scheme](secret, stored)
    except (CryptFormatError, ValueError, binascii.Error) as exc:
        raise UnknownHashError(f"malformed {scheme} hash") from exc


def _same(a: str | bytes, b: str | bytes) -> bool:
    left = a.encode("utf-8", "surrogateescape") if isinstance(a, str) else a
    right = b.encode("utf-8", "surrogateescape") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def _verify_argon2(secret: bytes, stored: str) -> bool:
    try:
        return argon2.PasswordHasher().verify(stored, secret)
    except argon2.exceptions.VerifyMismatchError:
        return False
    except argon2.exceptions.InvalidHashError as exc:
        raise ValueError("malformed argon2 hash") from exc
    except argon2.exceptions.VerificationError:
        return False


def _verify_bcrypt(secret: bytes, stored: str) -> bool:
    # bcrypt only ever looks at the first 72 bytes; every implementation cuts there.
    return bcrypt.checkpw(secret[:_BCRYPT_MAX], stored.encode("ascii"))


def _b64decode(text: str) -> bytes:
    """Decode standard or passlib-style ("." for "+") base64, padded or not."""
    text = text.replace(".", "+")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _verify_scrypt(secret: bytes, stored: str) -> bool:
    match = _SCRYPT_RE.match(stored)
    if not match:
        raise ValueError("malformed scrypt hash")
    ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
    if not (1 <= ln <= _SCRYPT_MAX_LN and 1 <= r <= 64 and 1 <= p <= 64):
        raise ValueError("scrypt cost out of range")
    salt, expected = _b64decode(match.group(4)), _b64decode(match.group(5))
    got = _scrypt(secret, salt, ln, r, p, length=len(expected))
    return hmac.compare_digest(got, expected)


def _scrypt(secret: bytes, salt: bytes, ln: int, r: int, p: int, *, length: int) -> bytes:
    n = 1 << ln
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length)


def _verify_pbkdf2(secret: bytes, stored: str) -> bool:
    match = _PBKDF2_RE.match(stored)
    if match:
        digest = match.group(1) or "sha1"
        rounds = int(match.group(2))
        salt, expected = _b64decode(match.group(3)), _b64decode(match.group(4))
    else:
        django = _DJANGO_PBKDF2_RE.match(stored)
        if not django:
            raise ValueError("malformed pbkdf2 hash")
        digest, rounds = django.group(1), int(django.group(2))
        salt, expected = django.group(3).encode("ascii"), _b64decode(django.group(4))
    if not 1 <= rounds <= _PBKDF2_MAX_ROUNDS:
        raise ValueError("pbkdf2 rounds out of range")
    got = hashlib.pbkdf2_hmac(digest, secret, salt, rounds, dklen=len(expected))
    return hmac.compare_digest(got, expected)


def _verify_sha_crypt(secret: bytes, stored: str) -> bool:
    # The system's libcrypt computes the same string several times faster and
    # without the GIL; the pure-Python code is the fallback (and the reference).
    made = _call_libcrypt(secret, stored) if USE_LIBCRYPT else None
    return _same(made or sha_crypt(secret, stored), stored)


def _verify_md5_crypt(secret: bytes, stored: str) -> bool:
    made = None
    if USE_LIBCRYPT and stored.startswith("$1$"):  # libcrypt knows $1$, not Apache's $apr1$
        made = _call_libcrypt(secret, stored)
    return _same(made or md5_crypt(secret, stored), stored)


def _verify_sha1(secret: bytes, stored: str) -> bool:
    expected = base64.b64decode(stored[5:], validate=True)
    got = hashlib.sha1(secret, usedforsecurity=False).digest()
    return hmac.compare_digest(got, expected)


def _verify_libcrypt(secret: bytes, stored: str) -> bool:
    got = _call_libcrypt(secret, stored)
    return got is not None and _same(got, stored)


_VERIFIERS: dict[str, Callable[[bytes, str], bool]] = {
    "argon2": _verify_argon2,
    "bcrypt": _verify_bcrypt,
    "scrypt": _verify_scrypt,
    "pbkdf2": _verify_pbkdf2,
    "sha512-crypt": _verify_sha_crypt,
    "sha256-crypt": _verify_sha_crypt,
    "md5-crypt": _verify_md5_crypt,
    "apr1": _verify_md5_crypt,
    "sha1": _verify_sha1,
    "crypt-des": _verify_libcrypt,
    "crypt": _verify_libcrypt,
}


# --------------------------------------------------------------------------- libcrypt

_CRYPT_BUFFER = 256 * 1024  # larger than any libc's struct crypt_data
_thread_buffers = threading.local()
_libcrypt_lock = threading.Lock()


def _buffer() -> ctypes.Array[ctypes.c_char]:
    buf: ctypes.Array[ctypes.c_char] | None = getattr(_thread_buffers, "buf", None)
    if buf is None:
        buf = _thread_buffers.buf = ctypes.create_string_buffer(_CRYPT_BUFFER)
    return buf


@functools.cache
def _libcrypt() -> Callable[[bytes, bytes], bytes | None] | None:
    """The system's crypt(3) through ctypes, or ``None`` when there is none.

    ctypes releases the GIL during the call, so hashes in several worker threads
    run in parallel. The re-entrant ``crypt_rn``/``crypt_r`` get a buffer per
    thread; plain ``crypt`` (static result) runs under a lock.
    """
    name = ctypes.util.find_library("crypt")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    for symbol in ("crypt_rn", "crypt_r"):
        func = getattr(lib, symbol, None)
        if func is None:
            continue
        sized = symbol == "crypt_rn"
        func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p] + (
            [ctypes.c_int] if sized else []
        )
        func.restype = ctypes.c_char_p

        def reentrant(
            secret: bytes, setting: bytes, func: Any = func, sized: bool = sized
        ) -> bytes | None:
            buf = _buffer()  # zeroed when made; reused by the same thread only
            args = (secret, setting, buf, _CRYPT_BUFFER) if sized else (secret, setting, buf)
            result: bytes | None = func(*args)
            return result

        return reentrant
    plain = getattr(lib, "crypt", None)
    if plain is None:
        return None
    plain.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    plain.restype = ctypes.c_char_p

    def locked(secret: bytes, setting: bytes) -> bytes | None:
        with _libcrypt_lock:  # crypt(3) returns a static buffer
            result: bytes | None = plain(secret, setting)
            return result

    return locked


def _call_libcrypt(secret: bytes, setting: str) -> str | None:
    """``crypt(secret, setting)`` by the system's libcrypt; ``None`` if unsupported."""
    call = _libcrypt()
    if call is None or b"\0" in secret or not setting.isascii():
        return None
    result = call(secret, setting.encode("ascii"))
    if not result or result.startswith(b"*"):
        return None
    return result.decode("ascii", "replace")


# --------------------------------------------------------------------------- hash


def _salt_text(length: int) -> str:
    alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def hash_password(password: str | bytes, scheme: str = DEFAULT_SCHEME) -> str:
    """Hash ``password`` with a fresh salt (blocking). ``scheme`` is one of :data:`HASH_SCHEMES`."""
    secret = to_bytes(password)
    if scheme == "argon2id":
        return argon2.PasswordHasher().hash(secret)
    if scheme == "bcrypt":
        if len(secret) > _BCRYPT_MAX:
            raise ValueError("bcrypt uses only the first 72 bytes of a password; use argon2id")
        return bcrypt.hashpw(secret, bcrypt.gensalt(12)).decode("ascii")
    if scheme == "scrypt":
        salt = secrets.token_bytes(16)
        return (
            f"$scrypt$ln=15,r=8,p=1${_b64(salt)}${_b64(_scrypt(secret, salt, 15, 8, 1, length=32))}"
        )
    if scheme == "pbkdf2-sha256":
        salt, rounds = secrets.token_bytes(16), 600_000
        key = hashlib.pbkdf2_hmac("sha256", secret, salt, rounds)
        return f"$pbkdf2-sha256${rounds}${_b64(salt)}${_b64(key)}"
    if scheme == "sha512-crypt":
        return sha_crypt(secret, "$6$" + _salt_text(16))
    if scheme == "sha256-crypt":
        return sha_crypt(secret, "$5$" + _salt_text(16))
    raise ValueError(f"unknown hash scheme {scheme!r}; choose one of {', '.join(HASH_SCHEMES)}")


def dummy_like(stored: str) -> str:
    """A hash of a random secret that costs as much to verify as ``stored`` (blocking).

    Same scheme, same cost parameters, fresh salt. Checkers verify an unknown
    user's password against it so that "no such user" takes as long as
    "wrong password". Falls back to a default argon2id hash for locked or
    unrecognised entries.
    """
    secret = secrets.token_bytes(24)
    scheme = None if is_locked(stored) else identify(stored)
    try:
        if scheme == "argon2":
            params = argon2.extract_parameters(stored)
            return argon2.PasswordHasher.from_parameters(params).hash(secret)
        if scheme == "bcrypt":
            cost = int(stored[4:6])
            return bcrypt.hashpw(secret, bcrypt.gensalt(cost, prefix=b"2b")).decode("ascii")
        if scheme == "scrypt":
            match = _SCRYPT_RE.match(stored)
            if match:
                ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
                salt = secrets.token_bytes(16)
                key = _scrypt(secret, salt, ln, r, p, length=32)
                return f"$scrypt$ln={ln},r={r},p={p}${_b64(salt)}${_b64(key)}"
        if scheme == "pbkdf2":
            return _dummy_pbkdf2(secret, stored)
        if scheme in ("sha512-crypt", "sha256-crypt"):
            head = stored[:3]
            rest = stored[3:]
            if rest.startswith("rounds="):
                head += rest.split("$", 1)[0] + "$"
            return sha_crypt(secret, head + _salt_text(16))
        if scheme in ("md5-crypt", "apr1"):
            magic = "$apr1$" if scheme == "apr1" else "$1$"
            return md5_crypt(secret, magic + _salt_text(8))
        if scheme == "sha1":
            return (
                "{SHA}"
                + base64.b64encode(hashlib.sha1(secret, usedforsecurity=False).digest()).decode()
            )
        if scheme in ("crypt", "crypt-des"):
            # The same setting (salt and cost) with another secret costs the same.
            made = _call_libcrypt(secret.hex().encode("ascii"), stored)
            if made is not None:
                return made
    except (ValueError, CryptFormatError, binascii.Error, argon2.exceptions.InvalidHashError):
        pass
    return argon2.PasswordHasher().hash(secret)


def _dummy_pbkdf2(secret: bytes, stored: str) -> str:
    salt = secrets.token_bytes(16)
    match = _PBKDF2_RE.match(stored)
    if match:
        digest = match.group(1) or "sha1"
        rounds = int(match.group(2))
        key = hashlib.pbkdf2_hmac(
            digest, secret, salt, rounds, dklen=len(_b64decode(match.group(4)))
        )
        name = "$pbkdf2" if match.group(1) is None else f"$pbkdf2-{digest}"
        return f"{name}${rounds}${_b64(salt).replace('+', '.')}${_b64(key).replace('+', '.')}"
    django = _DJANGO_PBKDF2_RE.match(stored)
    if not django:
        raise ValueError("malformed pbkdf2 hash")
    digest, rounds = django.group(1), int(django.group(2))
    salt_text = _salt_text(12).replace(".", "a").replace("/", "b")
    key = hashlib.pbkdf2_hmac(digest, secret, salt_text.encode("ascii"), rounds)
    return f"pbkdf2_{digest}${rounds}${salt_text}${base64.b64encode(key).decode('ascii')}"


# --------------------------------------------------------------------------- worker pool


def _usable_cpus() -> set[int]:
    """The CPUs this process may run on (a container's cpuset, ``taskset``), else all."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def default_worker_count() -> int:
    """One hashing thread per usable CPU but one, at least one and at most four.

    The CPU left over is the event loop's: argon2id and scrypt are CPU-bound
    for tens of milliseconds and release the GIL, so as many hashing threads
    as CPUs would leave the loop queueing for a core behind them.
    """
    return max(1, min(4, len(_usable_cpus()) - 1))


def _lower_priority() -> None:
    """Run this worker thread (and threads it starts) at a lower CPU priority,
    away from one CPU.

    On Linux the nice value and the CPU set are per thread and are inherited
    by the threads a thread starts (argon2 computes its lanes in threads of its
    own: four for the default hashes). Under a login flood the scheduler then
    prefers the event-loop thread, and with two CPUs or more one of them is
    never taken by hashing at all: hashing delays logins rather than every
    other connection.
    """
    tid = threading.get_native_id()
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + 10))
    cpus = sorted(_usable_cpus())
    if len(cpus) > 1:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(tid, cpus[1:])


class _WorkerPool:
    """The process-wide hashing pool, created on first use and forgotten after fork."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.size = default_worker_count()
        self.executor: ThreadPoolExecutor | None = None

    def get(self) -> ThreadPoolExecutor:
        with self.lock:
            if self.executor is None:
                self.executor = ThreadPoolExecutor(
                    self.size, thread_name_prefix="tapster-hash", initializer=_lower_priority
                )
            return self.executor

    def resize(self, size: int) -> None:
        with self.lock:
            self.size = size
            old, self.executor = self.executor, None
        if old is not None:
            old.shutdown(wait=False)

    def forget(self) -> None:
        # A forked child (a daemon) has none of the parent's threads.
        self.lock = threading.Lock()
        self.executor = None


_POOL = _WorkerPool()
os.register_at_fork(after_in_child=_POOL.forget)


def set_worker_count(count: int) -> None:
    """Set how many threads hash passwords at once (default: :func:`default_worker_count`)."""
    if count < 1:
        raise ValueError("the hashing pool needs at least one worker")
    _POOL.resize(count)


async def run_in_worker(func: Callable[..., T], *args: object) -> T:
    """Run a blocking, CPU-heavy ``func(*args)`` in the hashing pool and await it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL.get(), functools.partial(func, *args))


async def verify_password_async(password: str | bytes, stored: str) -> bool:
    """:func:`verify_password` in the hashing pool: the event loop keeps running."""
    return await run_in_worker(verify_password, password, stored)
