"""``--auth TYPE:ARGS``: checkers built from strings, and the options mixin.

Checker types are plugins of kind :class:`CheckerFactory`: tapster's own
(``memory``, ``file``, ``passwd``, ``htpasswd``, ``unix``, ``anonymous``,
``sshkey``) live in ``tapster/plugins/tapster_cred.py``, and any package can
add more the same way. :func:`make_checker` turns ``"TYPE:ARGS"`` into a
checker; :class:`AuthOptionMixin` gives any :class:`tapster.usage.Options`
the ``--auth``, ``--help-auth`` and ``--help-auth-type`` options.
"""

from __future__ import annotations

import sys
from abc import abstractmethod

from tapster.cred.errors import (
    AuthStringError,
    UnknownAuthTypeError,
    UnsupportedAuthTypeError,
)
from tapster.plugin import PluginKind, get_plugins
from tapster.usage import UsageError, secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from tapster.cred.checkers import CredentialsChecker

__all__ = [
    "AuthOptionMixin",
    "CheckerFactory",
    "checker_factories",
    "find_checker_factory",
    "make_checker",
]


class CheckerFactory(PluginKind):
    """A plugin that builds a checker from the ``ARGS`` part of ``--auth TYPE:ARGS``.

    Subclasses set ``auth_type`` (the ``TYPE`` word), ``auth_help`` (several
    lines for ``--help-auth-type``), ``arg_string_format`` (one line for the
    ``--help-auth`` table), ``credential_interfaces`` (credential classes the
    checkers accept) and implement :meth:`make_checker`. Put an instance in a
    module of ``tapster.plugins`` (or name it in an entry point) to install it.
    """

    plugin_kind: ClassVar[str] = "tapster.cred.strcred.CheckerFactory"
    plugin_name_field: ClassVar[str] = "auth_type"
    plugin_fields: ClassVar[tuple[str, ...]] = ("auth_type", "auth_help", "arg_string_format")

    auth_type: str = ""
    auth_help: str = ""
    arg_string_format: str = ""
    credential_interfaces: tuple[type, ...] = ()

    @abstractmethod
    def make_checker(self, arg_string: str) -> CredentialsChecker:
        """Build a checker; raise :class:`~tapster.cred.errors.AuthStringError` for bad args.

        ``arg_string`` is everything after the first ``:`` (empty when the
        auth string had none).
        """


def checker_factories() -> dict[str, CheckerFactory]:
    """Every installed checker factory by auth type (the first plugin wins a name)."""
    found: dict[str, CheckerFactory] = {}
    for factory in get_plugins(CheckerFactory):  # type: ignore[type-abstract]
        if factory.auth_type and factory.auth_type not in found:
            found[factory.auth_type] = factory
    return found


def find_checker_factory(auth_type: str) -> CheckerFactory:
    """The factory for ``auth_type``, or :class:`UnknownAuthTypeError`."""
    factories = checker_factories()
    try:
        return factories[auth_type]
    except KeyError:
        known = ", ".join(sorted(factories)) or "none installed"
        raise UnknownAuthTypeError(
            f"unknown auth type {auth_type!r} (known types: {known}; see --help-auth)"
        ) from None


def make_checker(description: str) -> CredentialsChecker:
    """Build a checker from ``"TYPE:ARGS"``, splitting at the first ``:``."""
    auth_type, _, arg_string = description.partition(":")
    return find_checker_factory(auth_type).make_checker(arg_string)


def _names(kinds: tuple[type, ...]) -> str:
    return ", ".join(k.__name__ for k in kinds) or "nothing"


def _mask_auth(description: str) -> str:
    """``TYPE:***``: an ``--auth`` value's arguments may hold passwords (``memory:``)."""
    auth_type, colon, _ = description.partition(":")
    return f"{auth_type}:***" if colon else auth_type


class AuthOptionMixin:
    """Adds ``--auth``, ``--help-auth`` and ``--help-auth-type`` to an Options class.

    Mix it into a :class:`tapster.usage.Options` subclass. Set
    ``supported_interfaces`` to the credential classes the protocol sends
    (default: every kind) and only auth types that accept one of them are
    offered. After parsing, ``options["cred_checkers"]`` is the list of
    checkers (in ``--auth`` order) and ``options["cred_interfaces"]`` maps each
    supported credential class to its checkers; both exist, empty, when no
    ``--auth`` was given.
    """

    supported_interfaces: ClassVar[tuple[type, ...] | None] = None

    if TYPE_CHECKING:
        # Provided by tapster.usage.Options, which this class is mixed into.
        def __getitem__(self, key: str) -> Any: ...
        def __setitem__(self, key: str, value: Any) -> None: ...

    def __init__(self) -> None:
        super().__init__()
        self["cred_checkers"] = []
        self["cred_interfaces"] = {}

    # -- helpers -------------------------------------------------------------------------

    def _supports(self, factory: CheckerFactory) -> bool:
        supported = self.supported_interfaces
        if supported is None:
            return True
        return any(issubclass(k, s) for k in factory.credential_interfaces for s in supported)

    def add_checker(self, checker: CredentialsChecker) -> None:
        """Record a checker as if it came from ``--auth`` (for programmatic set-up)."""
        self["cred_checkers"].append(checker)
        by_kind: dict[type, list[CredentialsChecker]] = self["cred_interfaces"]
        supported = self.supported_interfaces
        for kind in checker.credential_interfaces:
            if supported is None or any(issubclass(kind, s) for s in supported):
                by_kind.setdefault(kind, []).append(checker)

    # -- options -------------------------------------------------------------------------

    @secret(_mask_auth)
    def opt_auth(self, description: str) -> None:
        """Accept logins checked by TYPE[:ARGS]; repeat to accept several (see --help-auth)."""
        auth_type, _, arg_string = description.partition(":")
        try:
            factory = find_checker_factory(auth_type)
            if not self._supports(factory):
                raise UnsupportedAuthTypeError(
                    f"auth type {auth_type!r} checks {_names(factory.credential_interfaces)} "
                    f"credentials, but this server only takes "
                    f"{_names(self.supported_interfaces or ())} (see --help-auth)"
                )
        except AuthStringError as exc:
            raise UsageError(f"--auth: {exc}") from None
        try:
            checker = factory.make_checker(arg_string)
        except AuthStringError as exc:
            raise UsageError(f"--auth {auth_type}: {exc}") from None
        self.add_checker(checker)

    def opt_help_auth(self) -> None:
        """Show the auth types this server accepts for --auth, and exit."""
        sys.stdout.write(self.auth_help_text())
        sys.stdout.flush()
        raise SystemExit(0)

    def opt_help_auth_type(self, auth_type: str) -> None:
        """Show the details of one --auth type, and exit."""
        try:
            factory = find_checker_factory(auth_type)
        except AuthStringError as exc:
            raise UsageError(f"--help-auth-type: {exc}") from None
        sys.stdout.write(self.auth_type_help_text(factory))
        sys.stdout.flush()
        raise SystemExit(0)

    # -- help texts ----------------------------------------------------------------------

    def auth_help_text(self) -> str:
        """The ``--help-auth`` table: each supported type and its argument format."""
        rows = [(t, f) for t, f in sorted(checker_factories().items()) if self._supports(f)]
        lines = [
            "Usage: --auth TYPE[:ARGS]  (repeat --auth to accept several kinds of login)",
            "Details of one type: --help-auth-type TYPE",
            "",
        ]
        if not rows:
            lines.append("No installed auth type fits this server.")
            return "\n".join(lines) + "\n"
        width = max(len("TYPE"), *(len(t) for t, _ in rows))
        lines.append(f"  {'TYPE'.ljust(width)}  ARGS")
        for auth_type, factory in rows:
            fmt = factory.arg_string_format or "(no arguments)"
            lines.append(f"  {auth_type.ljust(width)}  {fmt}")
        return "\n".join(lines) + "\n"

    def auth_type_help_text(self, factory: CheckerFactory) -> str:
        """The ``--help-auth-type`` text of one factory, with a warning if unsupported."""
        lines: list[str] = []
        if not self._supports(factory):
            lines += [
                f"Warning: this server cannot use {factory.auth_type!r}: it checks "
                f"{_names(factory.credential_interfaces)} credentials, but the server "
                f"only takes {_names(self.supported_interfaces or ())}.",
                "",
            ]
        usage = factory.auth_type
        if factory.arg_string_format:
            usage += ":" + factory.arg_string_format
        lines += [f"Usage: --auth {usage}", ""]
        lines += [line.rstrip() for line in factory.auth_help.strip("\n").splitlines()]
        lines += ["", f"Checks: {_names(factory.credential_interfaces)} credentials."]
        return "\n".join(lines) + "\n"
