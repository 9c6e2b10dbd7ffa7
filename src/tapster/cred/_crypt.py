"""crypt(3) hash schemes written in pure Python.

SHA-crypt (``$5$`` and ``$6$``) and MD5-crypt (``$1$`` and Apache's
``$apr1$``) are computed here so that they work where Python has no
``crypt`` module (it was removed in 3.13). The algorithms follow the public
specifications (Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" and
Poul-Henning Kamp's MD5-crypt); the code is tapster's own.

These functions hold the GIL while they run; callers run them in the hashing
worker pool, never on the event loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CryptFormatError", "md5_crypt", "sha_crypt"]

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ITOA64_SET = frozenset(ITOA64)

SHA_ROUNDS_DEFAULT = 5000
SHA_ROUNDS_MIN = 1000
SHA_ROUNDS_MAX = 999_999_999

# Order in which the final digest bytes are packed, three at a time, into
# four characters each. The last group of each table is shorter.
_SHA512_ORDER: Sequence[tuple[int, ...]] = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4),
    (47, 5, 26), (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51),
    (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13), (56, 14, 35),
    (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
    (62, 20, 41), (63,),
)  # fmt: skip
_SHA256_ORDER: Sequence[tuple[int, ...]] = (
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
    (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29),
    (31, 30),
)  # fmt: skip
_MD5_ORDER: Sequence[tuple[int, ...]] = (
    (0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5), (11,),
)  # fmt: skip


class CryptFormatError(ValueError):
    """A crypt string is malformed (bad rounds, bad characters, wrong length)."""


def _encode(digest: bytes, order: Sequence[tuple[int, ...]]) -> str:
    """Pack ``digest`` into crypt's base-64 alphabet, least significant bits first."""
    out: list[str] = []
    for group in order:
        value = 0
        for index in group:
            value = (value << 8) | digest[index]
        chars = len(group) + 1
        for _ in range(chars):
            out.append(ITOA64[value & 0x3F])
            value >>= 6
    return "".join(out)


def _repeat_to(block: bytes, length: int) -> bytes:
    """``block`` repeated and cut to exactly ``length`` bytes."""
    whole, rest = divmod(length, len(block))
    return block * whole + block[:rest]


def sha_crypt(password: bytes, setting: str) -> str:
    """Compute a ``$5$`` or ``$6$`` hash of ``password`` with the salt in ``setting``.

    ``setting`` is either a full hash (its salt and rounds are reused) or just
    the ``$6$[rounds=N$]salt`` prefix. Returns the complete hash string.
    """
    if setting.startswith("$5$"):
        digest: Callable[[bytes], Any] = hashlib.sha256
        order, magic = _SHA256_ORDER, "$5$"
    elif setting.startswith("$6$"):
        digest, order, magic = hashlib.sha512, _SHA512_ORDER, "$6$"
    else:
        raise CryptFormatError("not a SHA-crypt setting")
    rest = setting[3:]
    rounds = SHA_ROUNDS_DEFAULT
    explicit_rounds = False
    if rest.startswith("rounds="):
        text, sep, rest = rest[7:].partition("$")
        if not sep or not text.isdigit():
            raise CryptFormatError("bad rounds field in SHA-crypt hash")
        rounds = min(max(int(text), SHA_ROUNDS_MIN), SHA_ROUNDS_MAX)
        explicit_rounds = True
    salt_text = rest.split("$", 1)[0][:16]
    if not salt_text.isascii():
        raise CryptFormatError("non-ASCII salt in SHA-crypt hash")
    salt = salt_text.encode("ascii")

    plen = len(password)
    b = digest(password + salt + password).digest()
    ctx = digest(password + salt)
    ctx.update(_repeat_to(b, plen))
    n = plen
    while n:
        ctx.update(b if n & 1 else password)
        n >>= 1
    a = ctx.digest()

    p_seq = _repeat_to(digest(password * plen).digest(), plen)
    s_seq = _repeat_to(digest(salt * (16 + a[0])).digest(), len(salt))

    c = a
    for i in range(rounds):
        step = digest(p_seq if i & 1 else c)
        if i % 3:
            step.update(s_seq)
        if i % 7:
            step.update(p_seq)
        step.update(c if i & 1 else p_seq)
        c = step.digest()

    head = f"{magic}rounds={rounds}$" if explicit_rounds else magic
    return f"{head}{salt_text}${_encode(c, order)}"


def md5_crypt(password: bytes, setting: str) -> str:
    """Compute an MD5-crypt hash (``$1$`` or Apache's ``$apr1$``) of ``password``."""
    if setting.startswith("$apr1$"):
        magic = "$apr1$"
    elif setting.startswith("$1$"):
        magic = "$1$"
    else:
        raise CryptFormatError("not an MD5-crypt setting")
    salt_text = setting[len(magic) :].split("$", 1)[0][:8]
    if not salt_text.isascii():
        raise CryptFormatError("non-ASCII salt in MD5-crypt hash")
    salt = salt_text.encode("ascii")

    final = hashlib.md5(password + salt + password, usedforsecurity=False).digest()
    ctx = hashlib.md5(password + magic.encode("ascii") + salt, usedforsecurity=False)
    ctx.update(_repeat_to(final, len(password)))
    n = len(password)
    while n:
        ctx.update(b"\0" if n & 1 else password[:1])
        n >>= 1
    final = ctx.digest()

    for i in range(1000):
        step = hashlib.md5(password if i & 1 else final, usedforsecurity=False)
        if i % 3:
            step.update(salt)
        if i % 7:
            step.update(password)
        step.update(final if i & 1 else password)
        final = step.digest()

    return f"{magic}{salt_text}${_encode(final, _MD5_ORDER)}"


def valid_salt(salt: str) -> bool:
    """True if every character of ``salt`` is in crypt's base-64 alphabet."""
    return all(ch in _ITOA64_SET for ch in salt)
