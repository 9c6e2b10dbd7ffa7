"""``PortForwardOptions`` parsed in-process: which destinations are accepted, which refused."""

from __future__ import annotations

import pytest

from tapster.portforward import PortForwardOptions
from tapster.usage import UsageError

LISTEN = ["--port", "tcp:0:interface=127.0.0.1"]


def parsed(*args: str) -> PortForwardOptions:
    options = PortForwardOptions()
    options.parse_options([*LISTEN, *args])
    return options


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("localhost", "localhost"),
        ("db.example.", "db.example."),
        ("db-1.internal", "db-1.internal"),
        ("compose_db_1", "compose_db_1"),
        ("b\u00fccher.example", "b\u00fccher.example"),
        ("10.0.0.7", "10.0.0.7"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
    ],
)
def test_host_names_and_ip_literals_are_accepted(given: str, kept: str) -> None:
    assert parsed("--host", given, "--dest-port", "22")["destination"] == (kept, 22)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("bad host!!", "expected a host name"),
        ("", "expected a host name"),
        ("-db.example", "expected a host name"),
        ("db..example", "expected a host name"),
        ("db/1", "expected a host name"),
        ("db:5432", "expected a host name"),
        ("x" * 64 + ".example", "expected a host name"),
        (".".join(["a"] * 128), "expected a host name"),
        ("999.1.1.1", "not a valid IP address"),
        ("1.2.3", "not a valid IP address"),
        ("[db]", "expected an IPv6 address between the brackets"),
    ],
)
def test_bad_hosts_are_usage_errors(given: str, says: str) -> None:
    with pytest.raises(UsageError, match=f"option --host: invalid value .*: {says}"):
        parsed("--host", given)


def test_dest_alone_replaces_the_host_and_port_defaults() -> None:
    options = parsed("--dest", "tcp:host=127.0.0.1:port=5432")
    assert options["destination"].description == "tcp:host=127.0.0.1:port=5432"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--host", "db"], "--host"),
        (["-h", "localhost"], "--host"),
        (["--dest-port=6665"], "--dest-port"),
        (["-d", "22", "-h", "db"], "--dest-port and --host"),
    ],
)
def test_dest_with_host_or_dest_port_is_a_usage_error(args: list[str], named: str) -> None:
    # Even the default values, given explicitly, are refused: the user meant something.
    with pytest.raises(UsageError, match=f"^--dest cannot be combined with {named}: "):
        parsed(*args, "--dest", "tcp:host=127.0.0.1:port=5432")
    with pytest.raises(UsageError, match=f"^--dest cannot be combined with {named}: "):
        parsed("--dest", "tcp:host=127.0.0.1:port=5432", *args)
