"""The kinds of credentials a protocol can present to a portal.

Each credential kind is a plain class; checkers list the classes they
understand in ``credential_interfaces`` and the portal routes by
``isinstance``.

The text rule
-------------
A username or password is, at heart, the bytes the client typed. Protocols
receive bytes, the command line delivers ``str``, and a checker configured
from one must match what arrives through the other. tapster therefore holds
every username and password as ``str`` and converts with exactly one rule:

* ``bytes`` are decoded as UTF-8 with the ``surrogateescape`` error handler,
  so every byte sequence, valid UTF-8 or not, survives a round trip;
* ``str`` is kept as it is (a protocol that already decoded its input is
  assumed to have used UTF-8);
* strings that came from ``sys.argv`` go through :func:`from_command_line`,
  which recovers the bytes the shell passed (``os.fsencode``) and applies the
  bytes rule, so ``--auth memory:jos\u00e9:pw`` matches a client sending
  ``b"jos\\xc3\\xa9"`` whatever the locale;
* hashing encodes back with UTF-8 and ``surrogateescape``, which yields the
  original bytes.

There is no Unicode normalisation (NFC/NFKC): a composed and a decomposed
"\u00e9" are different passwords, exactly as in every crypt(3) implementation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = [
    "Anonymous",
    "SSHPrivateKey",
    "UsernamePassword",
    "from_command_line",
    "text",
    "to_bytes",
]


def text(value: str | bytes) -> str:
    """Normalise a username or password to ``str`` by the module's text rule."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "surrogateescape")
    raise TypeError(f"expected str or bytes, got {type(value).__name__}")


def to_bytes(value: str | bytes) -> bytes:
    """The bytes a normalised username or password stands for (inverse of :func:`text`)."""
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogateescape")


def from_command_line(value: str) -> str:
    """Normalise a string taken from ``sys.argv`` (or the environment).

    Python decoded it with the locale's encoding; this recovers the original
    bytes and decodes them by the UTF-8 rule, so the result equals what a
    protocol receiving the same bytes produces.
    """
    return text(os.fsencode(value))


@dataclass(frozen=True, slots=True)
class UsernamePassword:
    """A username and a clear-text password, as most line protocols send them.

    Both are normalised with :func:`text`; the password never appears in
    ``repr()``.
    """

    username: str
    password: str = field(repr=False)

    def __init__(self, username: str | bytes, password: str | bytes) -> None:
        object.__setattr__(self, "username", text(username))
        object.__setattr__(self, "password", text(password))

    @property
    def password_bytes(self) -> bytes:
        """The password as the bytes the client sent (what hashes are made of)."""
        return to_bytes(self.password)


@dataclass(frozen=True, slots=True)
class Anonymous:
    """No credentials at all: a guest asking to come in."""


@dataclass(frozen=True, slots=True)
class SSHPrivateKey:
    """Proof of possession of an SSH private key, as in SSH's "publickey" method.

    ``blob`` is the public key in SSH wire format; ``signed_data`` is what
    the client signed and ``signature`` the SSH-encoded signature (string
    algorithm name, then string signature blob). Both are ``None`` when the
    client only asks whether a key would be accepted.
    """

    username: str
    algorithm: str
    blob: bytes = field(repr=False)
    signed_data: bytes | None = field(default=None, repr=False)
    signature: bytes | None = field(default=None, repr=False)

    def __init__(
        self,
        username: str | bytes,
        algorithm: str | bytes,
        blob: bytes,
        signed_data: bytes | None = None,
        signature: bytes | None = None,
    ) -> None:
        object.__setattr__(self, "username", text(username))
        object.__setattr__(self, "algorithm", text(algorithm))
        object.__setattr__(self, "blob", bytes(blob))
        object.__setattr__(self, "signed_data", signed_data)
        object.__setattr__(self, "signature", signature)
