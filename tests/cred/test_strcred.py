"""``--auth`` strings, the checker-factory plugins and ``AuthOptionMixin``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cred.credtools import run, sha512_hash

from tapster.cred import strcred
from tapster.cred.checkers import (
    AllowAnonymousAccess,
    AuthorizedKeysChecker,
    InMemoryUsernamePasswordChecker,
    PasswordFileChecker,
    UnixAccountChecker,
)
from tapster.cred.credentials import Anonymous, SSHPrivateKey, UsernamePassword
from tapster.cred.errors import (
    BadAuthArgumentsError,
    MissingDependencyError,
    UnknownAuthTypeError,
)
from tapster.plugin import describe_plugins, get_plugins
from tapster.usage import Options, UsageError

BUILT_IN = {"memory", "file", "passwd", "htpasswd", "unix", "anonymous", "sshkey"}


class ServerOptions(Options, strcred.AuthOptionMixin):
    supported_interfaces = (UsernamePassword,)
    parameters = [("port", "p", 1234, "Server port number"), ("host", "h", "localhost", "Host")]


class MixinFirstOptions(strcred.AuthOptionMixin, Options):
    """No supported_interfaces: every auth type applies."""


def parse(cls: type[Options], *argv: str) -> Options:
    options = cls()
    options.parse_options(list(argv))
    return options


def test_builtin_factories_are_plugins() -> None:
    factories = get_plugins(strcred.CheckerFactory)  # type: ignore[type-abstract]
    assert {f.auth_type for f in factories} >= BUILT_IN
    for factory in factories:
        assert factory.auth_help.strip() and "\n" not in factory.arg_string_format
    infos = describe_plugins("tapster.cred.strcred.CheckerFactory")
    names = {info.name for info in infos}
    assert names >= BUILT_IN
    memory = next(info for info in infos if info.name == "memory")
    assert memory.fields["arg_string_format"].startswith("USER:PASSWORD")


def test_make_checker_splits_at_first_colon(tmp_path: Path) -> None:
    checker = strcred.make_checker("memory:alice:pa:ss:x")
    assert isinstance(checker, InMemoryUsernamePasswordChecker)
    assert checker.users == ["alice", "ss"]
    odd = tmp_path / "a:b"
    odd.write_text(f"u:{sha512_hash('p')}\n")
    file_checker = strcred.make_checker(f"file:{odd}")
    assert isinstance(file_checker, PasswordFileChecker) and file_checker.path == odd
    assert isinstance(strcred.make_checker("anonymous"), AllowAnonymousAccess)
    assert isinstance(strcred.make_checker("unix"), UnixAccountChecker)
    assert isinstance(strcred.make_checker("sshkey"), AuthorizedKeysChecker)
    assert isinstance(strcred.make_checker("sshkey:/keys/{user}"), AuthorizedKeysChecker)


@pytest.mark.parametrize(
    ("description", "error", "text"),
    [
        ("nope:x", UnknownAuthTypeError, "unknown auth type 'nope'"),
        ("memory", BadAuthArgumentsError, "USER:PASSWORD pairs"),
        ("memory:a:b:c", BadAuthArgumentsError, "odd number"),
        ("memory::b", BadAuthArgumentsError, "empty user name"),
        ("memory:a:", BadAuthArgumentsError, "user 'a' has an empty password"),
        ("memory:a:1:b:", BadAuthArgumentsError, "user 'b' has an empty password"),
        ("memory:a:1:a:2", BadAuthArgumentsError, "user 'a' is given twice"),
        ("file", BadAuthArgumentsError, "needs a file"),
        ("file:/no/such/file", BadAuthArgumentsError, "no such file: /no/such/file"),
        ("file:/", BadAuthArgumentsError, "is a directory"),
        ("unix:extra", BadAuthArgumentsError, "takes no arguments"),
        ("anonymous:x", BadAuthArgumentsError, "takes no arguments"),
        ("sshkey:/etc/keys", BadAuthArgumentsError, "must contain {user}"),
        ("passwd:/etc/passwd", BadAuthArgumentsError, "shadow passwords"),
    ],
)
def test_bad_auth_strings(description: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text.replace("{", r"\{").replace("}", r"\}")):
        strcred.make_checker(description)


def test_passwd_with_shadow_placeholders_names_unix(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/sh\nbin:x:1:1::/:/bin/false\n")
    with pytest.raises(BadAuthArgumentsError) as info:
        strcred.make_checker(f"passwd:{path}")
    message = str(info.value)
    assert "shadow passwords" in message and "--auth unix" in message and "\n" not in message


def test_sshkey_without_cryptography_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "cryptography" else real(name, *a),
    )
    with pytest.raises(
        MissingDependencyError,
        match=r"tapster\[ssh\]",
    ):
        strcred.make_checker("sshkey")


def test_mixin_collects_checkers_and_interfaces() -> None:
    options = parse(ServerOptions, "--auth", "memory:a:1", "--auth", "memory:b:2", "-p", "99")
    checkers = options["cred_checkers"]
    assert len(checkers) == 2 and options["port"] == "99"
    assert options["cred_interfaces"] == {UsernamePassword: checkers}
    assert run(checkers[1].request_avatar_id(UsernamePassword("b", "2"))) == "b"


@pytest.mark.parametrize("cls", [ServerOptions, MixinFirstOptions])
def test_mixin_keys_present_without_auth(cls: type[Options]) -> None:
    options = parse(cls)
    assert options["cred_checkers"] == [] and options["cred_interfaces"] == {}


def test_mixin_first_accepts_every_type() -> None:
    options = parse(MixinFirstOptions, "--auth", "anonymous", "--auth", "memory:u:p")
    by_kind = options["cred_interfaces"]
    assert set(by_kind) == {Anonymous, UsernamePassword}


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--auth", "bogus"], "--auth: unknown auth type 'bogus'"),
        (["--auth", "anonymous"], "--auth: auth type 'anonymous' checks Anonymous credentials"),
        (["--auth", "sshkey"], "only takes UsernamePassword"),
        (["--auth", "memory:x"], "--auth memory: expected USER:PASSWORD pairs"),
        (["--help-auth-type", "bogus"], "--help-auth-type: unknown auth type 'bogus'"),
    ],
)
def test_mixin_usage_errors_are_one_line(argv: list[str], text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(ServerOptions, *argv)
    assert text in str(info.value)
    assert "\n" not in str(info.value)


def test_help_auth_lists_supported_types(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(ServerOptions, "--help-auth")
    assert info.value.code == 0
    out = capsys.readouterr().out
    for auth_type in ("memory", "file", "passwd", "htpasswd", "unix"):
        assert f"  {auth_type} " in out
    assert "anonymous" not in out and "sshkey" not in out
    assert "--help-auth-type TYPE" in out


def test_help_auth_type(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(ServerOptions, "--help-auth-type", "passwd")
    out = capsys.readouterr().out
    assert out.startswith("Usage: --auth passwd:FILE")
    assert "shadow" in out and "Warning" not in out
    with pytest.raises(SystemExit):
        parse(ServerOptions, "--help-auth-type", "sshkey")
    out = capsys.readouterr().out
    assert out.startswith("Warning: this server cannot use 'sshkey'")
    assert "Usage: --auth sshkey" in out


def test_help_lists_auth_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(ServerOptions, "--help")
    out = capsys.readouterr().out
    assert "--auth=" in out and "--help-auth " in out and "--help-auth-type=" in out


def test_memory_warns_about_plain_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tapster.cred")
    strcred.make_checker("memory:user:s3cret")
    assert "tests and demos" in caplog.text and "s3cret" not in caplog.text


def test_third_party_factory_through_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drop-in plugin adds an auth type that the mixin then offers."""
    folder = tmp_path / "tapster" / "plugins"
    folder.mkdir(parents=True)
    (folder / "extra_cred.py").write_text(
        "from tapster.cred.strcred import CheckerFactory\n"
        "from tapster.cred.checkers import InMemoryUsernamePasswordChecker\n"
        "from tapster.cred.credentials import UsernamePassword\n"
        "class Fixed(CheckerFactory):\n"
        "    auth_type = 'fixed'\n"
        "    auth_help = 'Always the user demo with password demo.'\n"
        "    arg_string_format = ''\n"
        "    credential_interfaces = (UsernamePassword,)\n"
        "    def make_checker(self, arg_string):\n"
        "        return InMemoryUsernamePasswordChecker({'demo': 'demo'})\n"
        "fixed = Fixed()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import tapster.plugins

    monkeypatch.setattr(tapster.plugins, "__path__", [*tapster.plugins.__path__, str(folder)])
    options = parse(ServerOptions, "--auth", "fixed")
    checker = options["cred_checkers"][0]
    assert run(checker.request_avatar_id(UsernamePassword("demo", "demo"))) == "demo"
    _ = SSHPrivateKey  # the kinds are importable from one place


def test_sshkey_through_the_mixin_and_a_portal(tmp_path: Path) -> None:
    """An SSH server's options: --auth sshkey:TEMPLATE, then a real signed login."""
    pytest.importorskip("cryptography")
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tapster.cred.portal import Portal, Realm

    class SSHOptions(Options, strcred.AuthOptionMixin):
        supported_interfaces = (SSHPrivateKey,)

    class KeyRealm(Realm):
        async def request_avatar(self, avatar_id, mind, *interfaces):  # type: ignore[no-untyped-def]
            return object, avatar_id, lambda: None

    key = ed25519.Ed25519PrivateKey.generate()
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (tmp_path / "carol").write_bytes(line + b" carol@host\n")
    options = parse(SSHOptions, "--auth", f"sshkey:{tmp_path}/{{user}}")
    assert list(options["cred_interfaces"]) == [SSHPrivateKey]
    portal = Portal(KeyRealm(), options["cred_checkers"])
    blob = base64.b64decode(line.split()[1])
    data = b"session and request"
    sig = b"\0\0\0\x0bssh-ed25519" + len(s := key.sign(data)).to_bytes(4, "big") + s
    result = run(portal.login(SSHPrivateKey("carol", "ssh-ed25519", blob, data, sig), None))
    assert result.avatar == "carol"
    with pytest.raises(UsageError, match="only takes SSHPrivateKey"):
        parse(SSHOptions, "--auth", "memory:a:b")
