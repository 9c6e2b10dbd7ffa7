"""tapster's built-in ``--auth`` types (the plugin module instantiates them)."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from tapster.cred.checkers import (
    AllowAnonymousAccess,
    AuthorizedKeysChecker,
    CredentialsChecker,
    InMemoryUsernamePasswordChecker,
    PasswordFileChecker,
    UnixAccountChecker,
    default_key_files,
)
from tapster.cred.credentials import Anonymous, SSHPrivateKey, UsernamePassword, from_command_line
from tapster.cred.errors import BadAuthArgumentsError, MissingDependencyError
from tapster.cred.strcred import CheckerFactory

__all__ = [
    "AnonymousFactory",
    "FileFactory",
    "HtpasswdFactory",
    "MemoryFactory",
    "PasswdFactory",
    "SSHKeyFactory",
    "UnixFactory",
]

log = logging.getLogger("tapster.cred")


def _no_arguments(auth_type: str, arg_string: str) -> None:
    if arg_string:
        raise BadAuthArgumentsError(f"takes no arguments (write just --auth {auth_type})")


class MemoryFactory(CheckerFactory):
    """``memory:USER:PASS[:USER:PASS...]``: users on the command line."""

    auth_type = "memory"
    arg_string_format = "USER:PASSWORD[:USER:PASSWORD...]"
    auth_help = """
Users and passwords written on the command line, for tests and demos.

The passwords are plain text where every local user can read them (ps,
/proc, shell history): use file:, htpasswd: or unix for anything real.
Names and passwords are taken as the bytes the shell passed, so they match
what a client sends (see docs/auth.md, "the text rule").
"""
    credential_interfaces = (UsernamePassword,)

    def make_checker(self, arg_string: str) -> CredentialsChecker:
        fields = arg_string.split(":")
        if not arg_string or len(fields) % 2:
            raise BadAuthArgumentsError(
                "expected USER:PASSWORD pairs separated by ':' (got "
                f"{'nothing' if not arg_string else 'an odd number of fields'})"
            )
        users: dict[str, str] = {}
        for name, password in zip(fields[::2], fields[1::2], strict=True):
            if not name:
                raise BadAuthArgumentsError("empty user name in USER:PASSWORD pairs")
            user = from_command_line(name)
            if not password:
                raise BadAuthArgumentsError(f"user {user!r} has an empty password")
            if user in users:
                raise BadAuthArgumentsError(f"user {user!r} is given twice")
            users[user] = from_command_line(password)
        log.warning(
            "--auth memory: passwords given on the command line are visible to local "
            "users; use it for tests and demos only"
        )
        return InMemoryUsernamePasswordChecker(users)


def _file_checker(auth_type: str, arg_string: str, file_format: str) -> PasswordFileChecker:
    if not arg_string:
        raise BadAuthArgumentsError(f"needs a file (--auth {auth_type}:/path/to/file)")
    try:
        return PasswordFileChecker(arg_string, file_format)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise BadAuthArgumentsError(f"no such file: {arg_string}") from None
    except IsADirectoryError:
        raise BadAuthArgumentsError(f"{arg_string} is a directory, not a password file") from None
    except OSError as exc:
        raise BadAuthArgumentsError(f"cannot read {arg_string}: {exc.strerror or exc}") from None


class FileFactory(CheckerFactory):
    """``file:PATH``: tapster's own password file (``user:hash`` lines)."""

    auth_type = "file"
    arg_string_format = "FILE"
    auth_help = """
A password file with one "user:hash" line per user, as written by
tapster-passwd FILE USER (argon2id). bcrypt, scrypt, PBKDF2, $5$/$6$ crypt,
$apr1$ and {SHA} hashes are accepted too (the last two with a warning: they
are weak). Lines starting with # are comments.

The file is re-read whenever it changes, without a restart. A bad line is
reported once, with its number and what is wrong, and skipped; the other
users can still log in. Put "!" in front of a hash to lock an account.
"""
    credential_interfaces = (UsernamePassword,)

    def make_checker(self, arg_string: str) -> CredentialsChecker:
        return _file_checker(self.auth_type, arg_string, "file")


class PasswdFactory(CheckerFactory):
    """``passwd:PATH``: a file in /etc/passwd layout with crypt hashes in field two."""

    auth_type = "passwd"
    arg_string_format = "FILE"
    auth_help = """
A file in /etc/passwd layout (user:hash:uid:gid:gecos:home:shell) whose
second field holds a crypt(3) hash ($6$, $5$, $1$, bcrypt; others through
the system's libcrypt). The file is re-read when it changes.

Most systems keep the real hashes in /etc/shadow and leave "x" in
/etc/passwd; such a file cannot check passwords: use --auth unix for the
system's accounts instead.
"""
    credential_interfaces = (UsernamePassword,)

    def make_checker(self, arg_string: str) -> CredentialsChecker:
        checker = _file_checker(self.auth_type, arg_string, "passwd")
        if checker.shadowed and not checker.users:
            raise BadAuthArgumentsError(
                f"{arg_string} holds 'x' placeholders: this system uses shadow passwords, "
                "so the file has no hashes to check; use --auth unix instead"
            )
        if checker.shadowed:
            log.warning(
                "%s: %d users have shadow passwords ('x') and cannot log in through passwd:",
                arg_string,
                checker.shadowed,
            )
        return checker


class HtpasswdFactory(CheckerFactory):
    """``htpasswd:PATH``: an Apache password file."""

    auth_type = "htpasswd"
    arg_string_format = "FILE"
    auth_help = """
An Apache password file as made by htpasswd: "user:hash" lines with bcrypt
($2y$), MD5 ($apr1$), SHA-1 ({SHA}) or crypt hashes. MD5 and SHA-1 are
accepted with a warning, since they are fast to brute-force; re-create such
users with htpasswd -B (bcrypt). The file is re-read when it changes.
"""
    credential_interfaces = (UsernamePassword,)

    def make_checker(self, arg_string: str) -> CredentialsChecker:
        return _file_checker(self.auth_type, arg_string, "htpasswd")


class UnixFactory(CheckerFactory):
    """``unix``: the system's accounts."""

    auth_type = "unix"
    arg_string_format = ""
    auth_help = """
The system's own accounts: the user comes from the password database (pwd)
and the hash from /etc/shadow, which only root can read. Start the server as
root; logins keep working after --uid only if the checker can still read the
shadow file, so prefer a password file for servers that drop privileges.
"""
    credential_interfaces = (UsernamePassword,)

    def make_checker(self, arg_string: str) -> CredentialsChecker:
        _no_arguments(self.auth_type, arg_string)
        if not os.access("/etc/shadow", os.R_OK):
            log.warning("--auth unix: /etc/shadow is not readable; run as root")
        return UnixAccountChecker()


class AnonymousFactory(CheckerFactory):
    """``anonymous``: let guests in."""

    auth_type = "anonymous"
    arg_string_format = ""
    auth_help = """
Lets in anyone who logs in anonymously (for example FTP's "anonymous" user),
as the special avatar id tapster.cred.ANONYMOUS. Only useful with a protocol
that offers anonymous logins.
"""
    credential_interfaces = (Anonymous,)

    def make_checker(self, arg_string: str) -> CredentialsChecker:
        _no_arguments(self.auth_type, arg_string)
        return AllowAnonymousAccess()


class SSHKeyFactory(CheckerFactory):
    """``sshkey[:TEMPLATE]``: SSH public keys from authorized_keys files."""

    auth_type = "sshkey"
    arg_string_format = "[PATH-WITH-{user}]"
    auth_help = """
SSH public-key logins: a key is accepted when it is listed in the user's
~/.ssh/authorized_keys (or authorized_keys2) and the client's signature is
valid. Give a path containing {user} to read keys from elsewhere, e.g.
--auth sshkey:/etc/ssh/keys/{user}.

Needs the optional "cryptography" package: pip install 'tapster[ssh]'.
"""
    credential_interfaces = (SSHPrivateKey,)

    def make_checker(self, arg_string: str) -> CredentialsChecker:
        if importlib.util.find_spec("cryptography") is None:
            raise MissingDependencyError(
                "needs the optional 'cryptography' package: pip install 'tapster[ssh]'"
            )
        if not arg_string:
            return AuthorizedKeysChecker(default_key_files)
        if "{user}" not in arg_string:
            raise BadAuthArgumentsError(
                f"the path {arg_string!r} must contain {{user}} (e.g. /etc/ssh/keys/{{user}})"
            )
        template = arg_string

        def key_files(username: str) -> list[Path]:
            if not username or "/" in username or username in (".", "..") or "\0" in username:
                return []
            return [Path(template.replace("{user}", username))]

        return AuthorizedKeysChecker(key_files)
