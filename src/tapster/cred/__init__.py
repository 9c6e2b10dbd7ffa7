"""Authentication for tapster services: credentials, checkers, portals and realms.

A protocol reads credentials (:mod:`~tapster.cred.credentials`) and hands them
to a :class:`~tapster.cred.portal.Portal`; the portal asks its checkers
(:mod:`~tapster.cred.checkers`) who the user is and its realm for an avatar.
:mod:`~tapster.cred.strcred` builds checkers from ``--auth TYPE:ARGS`` strings,
and :mod:`~tapster.cred.hashing` makes and verifies password hashes off the
event loop.

The names are exported lazily (module ``__getattr__``): a plugin whose options
only mix in ``--auth`` (:mod:`~tapster.cred.strcred`) or name a credential
class does not load the hashing libraries (argon2, bcrypt, ``ctypes``) until a
checker is really made, which keeps ``tapster web`` without ``--auth`` quick
to start.
"""

from __future__ import annotations

from tapster._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.cred.checkers import ANONYMOUS, AvatarId, CredentialsChecker
    from tapster.cred.credentials import Anonymous, SSHPrivateKey, UsernamePassword
    from tapster.cred.errors import (
        LoginDenied,
        LoginFailed,
        UnauthorizedLogin,
        UnhandledCredentials,
    )
    from tapster.cred.portal import LoginResult, Portal, Realm

__all__ = [
    "ANONYMOUS",
    "Anonymous",
    "AvatarId",
    "CredentialsChecker",
    "LoginDenied",
    "LoginFailed",
    "LoginResult",
    "Portal",
    "Realm",
    "SSHPrivateKey",
    "UnauthorizedLogin",
    "UnhandledCredentials",
    "UsernamePassword",
]

_HOMES = {
    "ANONYMOUS": "checkers",
    "Anonymous": "credentials",
    "AvatarId": "checkers",
    "CredentialsChecker": "checkers",
    "LoginDenied": "errors",
    "LoginFailed": "errors",
    "LoginResult": "portal",
    "Portal": "portal",
    "Realm": "portal",
    "SSHPrivateKey": "credentials",
    "UnauthorizedLogin": "errors",
    "UnhandledCredentials": "errors",
    "UsernamePassword": "credentials",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
