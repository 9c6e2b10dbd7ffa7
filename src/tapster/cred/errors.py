"""Errors raised by :mod:`tapster.cred`.

Two families live here. Login failures (:class:`LoginFailed` and its subclasses)
are what a protocol sees when someone cannot log in; their messages are safe
to show to the remote side because they never say *why* a password was wrong.
Auth-string errors (:class:`AuthStringError` and its subclasses) describe a bad
``--auth TYPE:ARGS`` value given by the operator; they are ``ValueError``\\ s and
carry one line that names the problem and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AuthStringError",
    "BadAuthArgumentsError",
    "LoginDenied",
    "LoginFailed",
    "MissingDependencyError",
    "UnauthorizedLogin",
    "UnhandledCredentials",
    "UnknownAuthTypeError",
    "UnsupportedAuthTypeError",
    "ValidPublicKey",
]


class LoginFailed(Exception):  # noqa: N818 -- named like its subclasses in the contract
    """Base class of every reason a login did not produce an avatar."""


class UnauthorizedLogin(LoginFailed):
    """The credentials are wrong: unknown user, wrong password, bad key.

    The message never distinguishes an unknown user from a wrong password.
    """

    def __init__(self, message: str = "invalid credentials") -> None:
        super().__init__(message)


class ValidPublicKey(UnauthorizedLogin):
    """The offered public key would be accepted, but no signature came with it.

    SSH servers use this to answer a key query ("would you take this key?")
    before the client spends effort signing.
    """

    def __init__(self, message: str = "public key acceptable; signature required") -> None:
        super().__init__(message)


class LoginDenied(LoginFailed):
    """The credentials were fine, but the realm refused to hand out an avatar."""


class UnhandledCredentials(LoginFailed):
    """No checker on the portal understands this kind of credentials.

    This is a configuration error of the server (for example ``--auth
    anonymous`` on a server whose protocol only sends usernames and passwords),
    not a mistake of the client.
    """


class AuthStringError(ValueError):
    """An ``--auth TYPE:ARGS`` string cannot be turned into a checker."""


class UnknownAuthTypeError(AuthStringError):
    """No checker factory is installed for the requested auth type."""


class UnsupportedAuthTypeError(AuthStringError):
    """The auth type exists, but the application cannot use its credentials."""


class BadAuthArgumentsError(AuthStringError):
    """The argument part of the auth string is malformed or names a bad file."""


class MissingDependencyError(AuthStringError):
    """The auth type needs an optional package that is not installed."""
