"""HTTP Basic authentication (RFC 7617) over a ``tapster.cred`` portal.

Credentials are decoded here and checked by the portal's checkers, so every
``--auth`` type works. A successful ``Authorization`` value is remembered for
``CACHE_SECONDS`` (by its SHA-256, never in clear) so that a browser sending it
with every request does not pay for a password hash each time; failures are
never cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Callable

from tapster.cred import (
    ANONYMOUS,
    Anonymous,
    AvatarId,
    LoginFailed,
    Portal,
    Realm,
    UnhandledCredentials,
    UsernamePassword,
)

from ._http import Response, error_response

log = logging.getLogger("tapster.web")

#: Seconds a successful ``Authorization`` header is trusted without a new check.
CACHE_SECONDS = 10.0
_CACHE_MAX = 4096


class WebUser:
    """The avatar of an authenticated web client: just who it is."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class WebRealm(Realm):
    """Gives every authenticated id a ``WebUser``; the web server needs nothing more."""

    async def request_avatar(
        self, avatar_id: AvatarId, mind: object, *interfaces: type
    ) -> tuple[type, object, Callable[[], None]]:
        name = "-" if avatar_id is ANONYMOUS else str(avatar_id)
        return WebUser, WebUser(name), _no_logout


def _no_logout() -> None:
    return None


def check_realm(name: str) -> str:
    """``name`` if it can be a realm in a ``WWW-Authenticate`` header, else ``ValueError``.

    Printable ASCII only, without ``"`` or ``\\``: a control character would
    break the header (every 401 would fail), and browsers disagree on quoting.
    """
    for char in name:
        if not " " <= char <= "~" or char in '"\\':
            raise ValueError(
                f"{char!r} is not allowed in a realm name: use printable ASCII "
                'characters other than " and \\'
            )
    return name


def parse_basic(value: bytes) -> tuple[str, str] | None:
    """Username and password from a ``Basic`` value, or ``None`` if it is malformed."""
    scheme, _, token = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    # The credentials' own rule turns bytes into text (UTF-8, surrogateescape).
    return (
        user.decode("utf-8", "surrogateescape"),
        password.decode("utf-8", "surrogateescape"),
    )


class BasicAuth:
    """Checks requests' ``Authorization`` headers against a portal."""

    def __init__(self, portal: Portal, realm_name: str = "tapster") -> None:
        self._portal = portal
        realm = check_realm(realm_name)
        self._challenge = [("WWW-Authenticate", f'Basic realm="{realm}", charset="UTF-8"')]
        self._cache: dict[bytes, tuple[str, float]] = {}
        self._anonymous = Anonymous in portal.list_credential_interfaces()

    def cached(self, header: bytes | None) -> str | None:
        """The user for ``header`` if it passed a check recently, else ``None``."""
        if header is None:
            return None
        hit = self._cache.get(hashlib.sha256(header).digest())
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def challenge(self, head: bool = False) -> Response:
        """The 401 answer that makes a browser ask for a name and password."""
        return error_response(
            401, "This server needs a user name and password.", self._challenge, head=head
        )

    async def login(self, header: bytes | None) -> str | None:
        """Check ``header`` with the portal: the user name, or ``None`` if refused."""
        if header is None:
            credentials: object = Anonymous() if self._anonymous else None
            if credentials is None:
                return None
        else:
            pair = parse_basic(header)
            if pair is None:
                return None
            credentials = UsernamePassword(*pair)
        try:
            _, avatar, logout = await self._portal.login(credentials, None, WebUser)
        except UnhandledCredentials:
            log.warning("No --auth checker handles %s logins", type(credentials).__name__)
            return None
        except LoginFailed:
            if isinstance(credentials, UsernamePassword):
                log.info("Login failed for user %r", credentials.username)
            return None
        logout()
        name = avatar.name if isinstance(avatar, WebUser) else "-"
        if header is not None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            key = hashlib.sha256(header).digest()
            self._cache[key] = (name, time.monotonic() + CACHE_SECONDS)
        return name
