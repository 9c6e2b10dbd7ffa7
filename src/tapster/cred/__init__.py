"""Authentication for tapster services: credentials, checkers, portals and realms.

A protocol reads credentials (:mod:`~tapster.cred.credentials`) and hands them
to a :class:`~tapster.cred.portal.Portal`; the portal asks its checkers
(:mod:`~tapster.cred.checkers`) who the user is and its realm for an avatar.
:mod:`~tapster.cred.strcred` builds checkers from ``--auth TYPE:ARGS`` strings,
and :mod:`~tapster.cred.hashing` makes and verifies password hashes off the
event loop.
"""

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
