"""The portal: where a protocol trades credentials for an avatar.

A protocol knows how to read credentials off the wire and what to do with an
avatar; it knows nothing about password files. A realm knows how to build
avatars for user ids; it knows nothing about passwords. Checkers know about
passwords and nothing else. The :class:`Portal` joins the three::

    portal = Portal(MyRealm(), options["cred_checkers"])
    interface, avatar, logout = await portal.login(
        UsernamePassword(user, password), None, MyAvatar
    )
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import NamedTuple

from tapster.cred.checkers import AvatarId, CredentialsChecker
from tapster.cred.errors import (
    LoginFailed,
    UnauthorizedLogin,
    UnhandledCredentials,
    ValidPublicKey,
)

__all__ = ["LoginResult", "Portal", "Realm"]

log = logging.getLogger("tapster.cred")


class LoginResult(NamedTuple):
    """What a successful login yields: the interface chosen, the avatar, and how to leave."""

    interface: type
    avatar: object
    logout: Callable[[], None]


class Realm(ABC):
    """Builds avatars: the objects through which a logged-in user acts."""

    @abstractmethod
    async def request_avatar(
        self, avatar_id: AvatarId, mind: object, *interfaces: type
    ) -> tuple[type, object, Callable[[], None]]:
        """Return ``(interface, avatar, logout)`` for ``avatar_id``.

        ``interfaces`` are the kinds of avatar the protocol can work with, in
        order of preference; the realm picks one it can provide and returns
        it first. ``mind`` is whatever the protocol passed to
        :meth:`Portal.login` (often ``None``, sometimes a handle back to the
        client). ``logout`` is called once when the session ends. Raise
        :class:`~tapster.cred.errors.LoginDenied` to refuse a valid user.
        """


class Portal:
    """Joins one realm to the checkers that know the credentials.

    Several checkers may handle the same credential kind (for example two
    ``--auth file:`` options); they are tried in the order they were
    registered and the first that accepts wins.
    """

    def __init__(self, realm: Realm, checkers: Iterable[CredentialsChecker] = ()) -> None:
        self.realm = realm
        self._checkers: list[tuple[type, CredentialsChecker]] = []
        self._by_type: dict[type, tuple[CredentialsChecker, ...]] = {}
        for checker in checkers:
            self.register_checker(checker)

    def register_checker(self, checker: CredentialsChecker, *credential_interfaces: type) -> None:
        """Let ``checker`` handle the given credential kinds (default: the ones it lists)."""
        kinds = credential_interfaces or checker.credential_interfaces
        if not kinds:
            raise ValueError(f"{type(checker).__name__} names no credential interfaces")
        for kind in kinds:
            self._checkers.append((kind, checker))
        self._by_type.clear()

    def _checkers_for(self, credentials: object) -> tuple[CredentialsChecker, ...]:
        cls = type(credentials)
        found = self._by_type.get(cls)
        if found is None:
            matching = (c for kind, c in self._checkers if issubclass(cls, kind))
            found = self._by_type[cls] = tuple(dict.fromkeys(matching))
        return found

    def list_credential_interfaces(self) -> list[type]:
        """The credential kinds some checker on this portal can handle."""
        return list(dict.fromkeys(kind for kind, _ in self._checkers))

    async def login(self, credentials: object, mind: object, *interfaces: type) -> LoginResult:
        """Check ``credentials`` and ask the realm for an avatar.

        Raises :class:`UnauthorizedLogin` for bad credentials,
        :class:`UnhandledCredentials` when no checker takes this kind of
        credentials, and whatever the realm raises (normally
        :class:`LoginDenied`).
        """
        candidates = self._checkers_for(credentials)
        if not candidates:
            log.warning(
                "login refused: no checker accepts %s credentials (check the --auth options)",
                type(credentials).__name__,
            )
            raise UnhandledCredentials(
                f"no checker accepts {type(credentials).__name__} credentials"
            )
        failure: LoginFailed = UnauthorizedLogin()
        for checker in candidates:
            try:
                avatar_id = await checker.request_avatar_id(credentials)
            except ValidPublicKey as exc:
                failure = exc
                continue
            except UnauthorizedLogin as exc:
                if not isinstance(failure, ValidPublicKey):
                    failure = exc
                continue
            interface, avatar, logout = await self.realm.request_avatar(
                avatar_id, mind, *interfaces
            )
            _count_login(checker, "succeeded")
            return LoginResult(interface, avatar, logout)
        _count_login(candidates[-1], "failed")
        raise failure


def _count_login(checker: object, result: str) -> None:
    """``tapster_cred_logins_total{checker, result}``: logins by checker type and outcome."""
    from tapster.metrics import counter

    counter(
        "tapster_cred_logins",
        "Logins checked, by checker type and result (succeeded, failed).",
        labels=("checker", "result"),
    ).labels(type(checker).__name__, result).inc()
