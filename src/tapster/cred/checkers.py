"""Credentials checkers: turn credentials into an avatar id, or refuse.

A checker answers one question, "who is this?", for the credential kinds it
lists in ``credential_interfaces``. It knows nothing about protocols or
avatars; the :class:`~tapster.cred.portal.Portal` joins it to a realm.

Every checker here keeps slow work (hashing, reading files, looking up
accounts) off the event loop by running it in the hashing worker pool, and
spends the same effort on an unknown user as on a wrong password.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import enum
import hmac
import logging
import os
import pwd
import secrets
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import ClassVar, Final, Literal, TypeAlias

from tapster.cred import hashing
from tapster.cred._files import read_password_file
from tapster.cred.credentials import (
    Anonymous,
    SSHPrivateKey,
    UsernamePassword,
    text,
    to_bytes,
)
from tapster.cred.errors import UnauthorizedLogin, ValidPublicKey

__all__ = [
    "ANONYMOUS",
    "AllowAnonymousAccess",
    "AnonymousAvatarId",
    "AuthorizedKeysChecker",
    "AvatarId",
    "CredentialsChecker",
    "InMemoryUsernamePasswordChecker",
    "PasswordFileChecker",
    "UnixAccountChecker",
]

log = logging.getLogger("tapster.cred")


class AnonymousAvatarId(enum.Enum):
    """The type of :data:`ANONYMOUS`; no user name can ever equal it."""

    ANONYMOUS = "anonymous"


#: The avatar id of a guest admitted by :class:`AllowAnonymousAccess`.
ANONYMOUS: Final = AnonymousAvatarId.ANONYMOUS

#: What a checker hands to the realm: a user name, or :data:`ANONYMOUS`.
AvatarId: TypeAlias = str | AnonymousAvatarId


class CredentialsChecker(ABC):
    """Decides whether credentials are valid and, if so, whose they are."""

    #: Credential classes this checker understands (matched with ``isinstance``).
    credential_interfaces: ClassVar[tuple[type, ...]] = ()

    @abstractmethod
    async def request_avatar_id(self, credentials: object) -> AvatarId:
        """Return the avatar id for ``credentials`` or raise :class:`UnauthorizedLogin`."""


# --------------------------------------------------------------------------- memory


class InMemoryUsernamePasswordChecker(CredentialsChecker):
    """Users and clear-text passwords held in memory: for tests and demos.

    Passwords are kept only as keyed HMAC digests, compared in constant time;
    an unknown user is compared against a random digest so it costs the same.
    """

    credential_interfaces = (UsernamePassword,)

    def __init__(self, users: Mapping[str, str | bytes] | None = None) -> None:
        self._key = secrets.token_bytes(32)
        self._users: dict[str, bytes] = {}
        self._dummy = self._digest(secrets.token_bytes(16))
        for name, password in (users or {}).items():
            self.add_user(name, password)

    def _digest(self, password: bytes) -> bytes:
        return hmac.digest(self._key, password, "sha256")

    def add_user(self, username: str | bytes, password: str | bytes) -> None:
        """Add or replace one user (both values normalised by the text rule)."""
        self._users[text(username)] = self._digest(to_bytes(text(password)))

    @property
    def users(self) -> list[str]:
        """The known user names (never the passwords)."""
        return sorted(self._users)

    async def request_avatar_id(self, credentials: object) -> AvatarId:
        if not isinstance(credentials, UsernamePassword):
            raise UnauthorizedLogin()
        expected = self._users.get(credentials.username)
        ok = hmac.compare_digest(
            self._digest(credentials.password_bytes),
            self._dummy if expected is None else expected,
        )
        if ok and expected is not None:
            return credentials.username
        raise UnauthorizedLogin()


# --------------------------------------------------------------------------- files

FileFormat: TypeAlias = Literal["file", "passwd", "htpasswd"]


class PasswordFileChecker(CredentialsChecker):
    """Users and password hashes from a file that is re-read whenever it changes.

    Formats:

    ``file``
        ``user:hash`` per line; ``hash`` in any format :mod:`tapster.cred.hashing`
        verifies (argon2id from ``tapster-passwd`` by default).
    ``passwd``
        ``/etc/passwd`` layout: ``user:hash:uid:gid:gecos:home:shell``. An ``x``
        in the second field means the real hash is in the shadow file.
    ``htpasswd``
        Apache's ``user:hash`` (bcrypt, ``$apr1$``, ``{SHA}``, crypt).

    Blank lines and lines starting with ``#`` are ignored. A bad line is
    reported once (path, line number, reason) each time the file is loaded and
    skipped; the other lines keep working. Weak schemes are warned about the
    same way, and so is a file that every local user can read (except in
    ``passwd`` format, where that is the point). ``!`` or ``*`` in front of a
    hash locks the account. If the file cannot be read, nobody logs in until
    it can.
    """

    credential_interfaces = (UsernamePassword,)

    def __init__(self, path: str | os.PathLike[str], file_format: FileFormat = "file") -> None:
        self.path = Path(path)
        self.file_format: FileFormat = file_format
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._entries: dict[str, str] = {}
        self._dummy = ""
        self.problems: list[str] = []
        self.shadowed = 0
        self.load_count = 0
        # The first load happens now, so that a missing or unusable file fails at start-up.
        self._refresh(raise_errors=True)

    @property
    def users(self) -> list[str]:
        """The user names of the file's good lines, as last loaded."""
        with self._lock:
            return sorted(self._entries)

    # The loading runs in a worker thread (or at start-up), never on the loop.
    def _refresh(self, raise_errors: bool = False) -> None:
        with self._lock:
            try:
                st = self.path.stat()
            except OSError as exc:
                if raise_errors:
                    raise
                if self._signature != (0, 0, 0):
                    log.error("%s: cannot read password file (%s); refusing all logins",
                              self.path, exc.strerror or exc)  # fmt: skip
                    self._signature, self._entries = (0, 0, 0), {}
                    self._dummy = self._dummy or hashing.dummy_like("")
                return
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            if signature == self._signature:
                return
            try:
                # Regular files only, size capped, never blocking (a pipe, /dev/zero).
                data, st = read_password_file(self.path)
            except OSError as exc:
                if raise_errors:
                    raise
                log.error("%s: cannot read password file (%s); refusing all logins",
                          self.path, exc.strerror or exc)  # fmt: skip
                self._signature, self._entries = signature, {}
                self._dummy = self._dummy or hashing.dummy_like("")
                return
            self._signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            if st.st_mode & 0o004 and self.file_format != "passwd":
                log.warning("%s: every local user can read these password hashes; chmod o-r it",
                            self.path)  # fmt: skip
            self._parse(data)
            self.load_count += 1

    def _parse(self, data: bytes) -> None:
        entries: dict[str, str] = {}
        lines_of: dict[str, int] = {}
        problems: list[str] = []
        shadowed = 0
        for number, raw in enumerate(data.splitlines(), start=1):
            line = text(raw).rstrip()
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            user, sep, rest = line.partition(":")
            if not sep:
                problems.append(f"line {number}: no ':' between user name and password hash")
                continue
            if not user:
                problems.append(f"line {number}: empty user name")
                continue
            stored = rest if self.file_format == "file" else rest.split(":", 1)[0]
            if self.file_format == "passwd" and stored == "x":
                shadowed += 1
                continue
            if self.file_format == "passwd" and stored == "":
                stored = "*"  # an empty field would mean "no password": refuse instead
            if user in entries:
                problems.append(
                    f"line {number}: user already defined on line {lines_of[user]}; ignored"
                )
                continue
            if not hashing.is_locked(stored):
                reason = hashing.check_format(stored)
                if reason is not None:
                    problems.append(f"line {number}: {reason}")
                    continue
                scheme = hashing.identify(stored)
                if scheme in hashing.WEAK_SCHEMES:
                    log.warning("%s line %d: %s is a weak password hash; re-hash with "
                                "tapster-passwd (argon2id)", self.path, number, scheme)  # fmt: skip
            entries[user] = stored
            lines_of[user] = number
        for problem in problems:
            log.warning("%s %s", self.path, problem)
        self.problems = problems
        self.shadowed = shadowed
        self._entries = entries
        self._dummy = hashing.dummy_like(_representative(entries.values()))

    def _check(self, username: str, password: str) -> bool:
        self._refresh()
        with self._lock:
            stored = self._entries.get(username)
            dummy = self._dummy
        if stored is None or hashing.is_locked(stored):
            hashing.verify_password(password, dummy)
            return False
        try:
            return hashing.verify_password(password, stored)
        except hashing.UnknownHashError:
            hashing.verify_password(password, dummy)
            return False

    async def request_avatar_id(self, credentials: object) -> AvatarId:
        if not isinstance(credentials, UsernamePassword):
            raise UnauthorizedLogin()
        ok = await hashing.run_in_worker(self._check, credentials.username, credentials.password)
        if ok:
            return credentials.username
        raise UnauthorizedLogin()


def _representative(hashes: Iterable[str]) -> str:
    """The first hash of the most common scheme: what a dummy hash should look like."""
    usable = [h for h in hashes if not hashing.is_locked(h)]
    counts = collections.Counter(hashing.identify(h) for h in usable)
    if not counts:
        return ""
    common = counts.most_common(1)[0][0]
    return next(h for h in usable if hashing.identify(h) == common)


# --------------------------------------------------------------------------- unix


def _shadow_hash(name: str) -> str | None:
    """The shadow-file hash of ``name``, or ``None`` when it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import spwd  # type: ignore[import-not-found,unused-ignore]  # gone in 3.13
    except ImportError:
        pass
    else:
        try:
            return str(spwd.getspnam(name).sp_pwdp)
        except KeyError:
            return None
        except PermissionError:
            pass
    try:
        with open("/etc/shadow", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) > 1 and fields[0] == name:
                    return fields[1]
    except OSError:
        return None
    return None


def _all_shadow_hashes() -> list[str]:
    try:
        with open("/etc/shadow", encoding="utf-8", errors="surrogateescape") as f:
            return [line.split(":")[1] for line in f if line.count(":") >= 1]
    except OSError:
        return []


class UnixAccountChecker(CredentialsChecker):
    """The system's own accounts: ``pwd`` for the user, the shadow file for the hash.

    Needs to run as root to read shadow passwords (start-up happens as root;
    the check runs before privileges are dropped only if the service checks
    then, so run services using this checker without ``--uid``, or expect
    every login to fail once the shadow file is out of reach).
    """

    credential_interfaces = (UsernamePassword,)

    def __init__(self) -> None:
        self._dummy = hashing.dummy_like(_representative(_all_shadow_hashes()) or "$6$x$")
        self._warned = False

    def _lookup(self, username: str) -> str | None:
        if "\0" in username or ":" in username:
            return None
        try:
            entry = pwd.getpwnam(username)
        except (KeyError, UnicodeEncodeError):
            return None
        stored = entry.pw_passwd
        if stored in ("x", "*", "*NP*", "********"):
            shadow = _shadow_hash(username)
            if shadow is None and not self._warned:
                self._warned = True
                log.error("cannot read shadow passwords: unix logins fail (run as root)")
            stored = shadow or "*"
        return stored

    def _check(self, username: str, password: str) -> bool:
        stored = self._lookup(username)
        if stored is None or hashing.is_locked(stored):
            hashing.verify_password(password, self._dummy)
            return False
        try:
            return hashing.verify_password(password, stored)
        except hashing.UnknownHashError:
            hashing.verify_password(password, self._dummy)
            return False

    async def request_avatar_id(self, credentials: object) -> AvatarId:
        if not isinstance(credentials, UsernamePassword):
            raise UnauthorizedLogin()
        ok = await hashing.run_in_worker(self._check, credentials.username, credentials.password)
        if ok:
            return credentials.username
        raise UnauthorizedLogin()


# --------------------------------------------------------------------------- anonymous


class AllowAnonymousAccess(CredentialsChecker):
    """Lets in anyone who asks as :class:`Anonymous`, with avatar id :data:`ANONYMOUS`."""

    credential_interfaces = (Anonymous,)

    async def request_avatar_id(self, credentials: object) -> AvatarId:
        if isinstance(credentials, Anonymous):
            return ANONYMOUS
        raise UnauthorizedLogin()


# --------------------------------------------------------------------------- ssh keys

_KEY_TYPES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")


def default_key_files(username: str) -> list[Path]:
    """``~user/.ssh/authorized_keys`` and ``authorized_keys2`` of a system account."""
    try:
        home = Path(pwd.getpwnam(username).pw_dir)
    except (KeyError, UnicodeEncodeError):
        return []
    return [home / ".ssh" / "authorized_keys", home / ".ssh" / "authorized_keys2"]


def parse_authorized_keys(data: str) -> list[bytes]:
    """The key blobs of an ``authorized_keys`` file (options and comments skipped)."""
    blobs: list[bytes] = []
    for line in data.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        for index, field in enumerate(fields[:-1]):
            if field.startswith(_KEY_TYPES):
                with contextlib.suppress(ValueError):
                    blobs.append(base64.b64decode(fields[index + 1], validate=True))
                break
    return blobs


def _read_string(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(data):
        raise ValueError("truncated SSH string")
    length = int.from_bytes(data[offset : offset + 4], "big")
    end = offset + 4 + length
    if end > len(data):
        raise ValueError("truncated SSH string")
    return data[offset + 4 : end], end


def verify_ssh_signature(blob: bytes, signature: bytes, signed_data: bytes) -> bool:
    """Check an SSH-encoded signature made by the key ``blob`` (needs ``cryptography``)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    key_type, _ = _read_string(blob, 0)
    algorithm, offset = _read_string(signature, 0)
    raw, _ = _read_string(signature, offset)
    key = serialization.load_ssh_public_key(key_type + b" " + base64.b64encode(blob))
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, signed_data)
        elif isinstance(key, rsa.RSAPublicKey):
            # SHA-1 "ssh-rsa" signatures are refused, as OpenSSH does by default.
            digests: dict[bytes, hashes.HashAlgorithm] = {
                b"rsa-sha2-256": hashes.SHA256(),
                b"rsa-sha2-512": hashes.SHA512(),
            }
            if algorithm not in digests:
                return False
            key.verify(raw, signed_data, padding.PKCS1v15(), digests[algorithm])
        elif isinstance(key, ec.EllipticCurvePublicKey):
            r, offset = _read_string(raw, 0)
            s, _ = _read_string(raw, offset)
            der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
            size = key.curve.key_size
            digest: hashes.HashAlgorithm = (
                hashes.SHA256()
                if size <= 256
                else hashes.SHA384()
                if size <= 384
                else hashes.SHA512()
            )
            key.verify(der, signed_data, ec.ECDSA(digest))
        else:
            return False
    except InvalidSignature:
        return False
    return True


class AuthorizedKeysChecker(CredentialsChecker):
    """Accepts an SSH key listed in the user's ``authorized_keys``, with a valid signature.

    ``key_files(username)`` names the files to read; by default the system
    account's ``~/.ssh/authorized_keys`` and ``authorized_keys2``. A request
    without a signature that names an acceptable key raises
    :class:`ValidPublicKey`. Needs the optional ``cryptography`` package.
    """

    credential_interfaces = (SSHPrivateKey,)

    def __init__(self, key_files: Callable[[str], Iterable[Path]] | None = None) -> None:
        self._key_files = key_files or default_key_files

    def _check(self, credentials: SSHPrivateKey) -> bool:
        found = False
        for path in self._key_files(credentials.username):
            try:
                # A missing file, or a pipe or device where a key file should be: no keys.
                raw, _ = read_password_file(path)
            except OSError:
                continue
            for blob in parse_authorized_keys(raw.decode("utf-8", errors="replace")):
                found = hmac.compare_digest(blob, credentials.blob) or found
        if not found:
            return False
        if credentials.signature is None or credentials.signed_data is None:
            raise ValidPublicKey()
        try:
            return verify_ssh_signature(
                credentials.blob, credentials.signature, credentials.signed_data
            )
        except (ValueError, TypeError):
            return False

    async def request_avatar_id(self, credentials: object) -> AvatarId:
        if not isinstance(credentials, SSHPrivateKey):
            raise UnauthorizedLogin()
        if await hashing.run_in_worker(self._check, credentials):
            return credentials.username
        raise UnauthorizedLogin()
