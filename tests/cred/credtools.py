"""Helpers for the cred tests: cheap real hashes and an event loop runner."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Coroutine
from typing import Any, TypeVar

import argon2
import bcrypt

from tapster.cred._crypt import md5_crypt, sha_crypt

T = TypeVar("T")

# Real argon2id, with a small cost so the tests stay fast.
FAST_ARGON2 = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def argon2_hash(password: str) -> str:
    return FAST_ARGON2.hash(password)


def bcrypt_hash(password: str, prefix: str = "2b") -> str:
    """A real bcrypt hash; prefix "2y" gives the spelling Apache's htpasswd writes."""
    made = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    return made.replace("$2b$", f"${prefix}$", 1)


def sha512_hash(password: str, salt: str = "tapsterSaltSalt1") -> str:
    return sha_crypt(password.encode(), "$6$" + salt)


def apr1_hash(password: str, salt: str = "tapster1") -> str:
    return md5_crypt(password.encode(), "$apr1$" + salt)


def openssl_hash(flag: str, password: str) -> str:
    return subprocess.run(
        ["openssl", "passwd", flag, password], capture_output=True, text=True, check=True
    ).stdout.strip()
