"""The description syntax and the one error type, including a property test."""

from __future__ import annotations

import string
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapster.endpoints import (
    EndpointError,
    TCPServerEndpoint,
    UNIXServerEndpoint,
    client_from_string,
    parse,
    quote,
    server_from_string,
)


def test_split_positional_keyword_and_escapes() -> None:
    parsed = parse(r"tcp:8080:interface=\:\:1:note=a=b:path=C\:\\dir")
    assert parsed.kind == "tcp"
    assert parsed.args == ["8080"]
    assert parsed.kwargs == {"interface": "::1", "note": "a=b", "path": "C:\\dir"}
    assert parse(r"unix:/tmp/a\=b").args == ["/tmp/a=b"]


def test_quote_round_trips() -> None:
    for value in ["::1", "a=b", "back\\slash", "plain", ""]:
        assert parse("x:k=" + quote(value)).kwargs["k"] == value


def test_tcp_server_forms() -> None:
    endpoint = server_from_string("tcp:8080:interface=127.0.0.1:backlog=10")
    assert isinstance(endpoint, TCPServerEndpoint)
    assert (endpoint.port, endpoint.interface, endpoint.backlog) == (8080, "127.0.0.1", 10)
    assert server_from_string("tcp:port=80").port  # type: ignore[attr-defined]
    six = server_from_string(r"tcp:0:interface=\:\:1")
    assert six.ipv6  # type: ignore[attr-defined]
    any_six = server_from_string("tcp6:0")
    assert any_six.ipv6 and any_six.interface == ""  # type: ignore[attr-defined]


def test_unix_server_forms() -> None:
    endpoint = server_from_string("unix:/run/app.sock:mode=660:backlog=5")
    assert isinstance(endpoint, UNIXServerEndpoint)
    assert (endpoint.path, endpoint.mode, endpoint.backlog) == ("/run/app.sock", 0o660, 5)
    assert server_from_string("unix:path=/x").path == "/x"  # type: ignore[attr-defined]


def test_client_forms() -> None:
    tcp = client_from_string("tcp:host=example.com:port=80:timeout=2.5")
    assert (tcp.host, tcp.port, tcp.timeout) == ("example.com", 80, 2.5)  # type: ignore[attr-defined]
    assert client_from_string("tcp:localhost:8080").port == 8080  # type: ignore[attr-defined]
    assert client_from_string("unix:path=/run/x.sock").path == "/run/x.sock"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("description", "problem"),
    [
        ("", "the endpoint type is missing"),
        ("nope:80", "unknown endpoint type 'nope' (known: fd, ssl, systemd, tcp, tcp6, tls"),
        ("tcp", "missing port"),
        ("tcp:http", "port: expected a whole number, not 'http'"),
        ("tcp:70000", "port must be 0 to 65535, not 70000"),
        ("tcp:80:colour=red", "unknown keyword 'colour' for type 'tcp'"),
        ("tcp:80:81", "unexpected argument '81'"),
        ("tcp:80:interface=::1", "write ':' inside a value as '\\:'"),
        ("tcp:80:port=81", "port is given twice"),
        ("tcp:80:backlog=0", "backlog must be at least 1"),
        ("tcp:80:interface=localhost", "interface must be an IP address"),
        ("tcp6:80:interface=127.0.0.1", "tcp6 needs an IPv6 interface"),
        ("tcp:80\\", "a backslash at the end escapes nothing"),
        ("tcp:80:=x", "has no name"),
        ("tcp:80:a=1:a=2", "keyword 'a' is given twice"),
        ("unix:/x:mode=999", "expected an octal mode"),
        ("unix", "missing path"),
        ("ssl:443", "missing cert=FILE"),
        ("ssl:443:cert=/no/such.pem", "cannot read the certificate file '/no/such.pem'"),
        ("ssl:443:cert=/", "cannot read the certificate file '/'"),
        ("fd:x", "expected a whole number"),
        ("systemd:index=0:name=a", "give exactly one of index=N or name=NAME"),
    ],
)
def test_errors_quote_the_description_and_say_what_is_wrong(description: str, problem: str) -> None:
    with pytest.raises(EndpointError) as info:
        server_from_string(description)
    message = str(info.value)
    assert message.startswith(f"bad endpoint {description!r}: ")
    assert problem in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("description", "problem"),
    [
        ("tcp:host=example.com", "missing port"),
        ("tcp:port=80", "missing host"),
        ("tcp:host=h:port=0", "port must be 1 to 65535"),
        ("tcp:host=h:port=1:timeout=-1", "timeout: expected a positive number"),
        ("fd:3", "type 'fd' cannot be used to connect"),
        ("ssl:host=h:port=1:key=/k", "key=FILE needs cert=FILE"),
    ],
)
def test_client_errors(description: str, problem: str) -> None:
    with pytest.raises(EndpointError, match="bad endpoint") as info:
        client_from_string(description)
    assert problem in str(info.value)


def test_lookup_is_fast_after_the_first() -> None:
    server_from_string("tcp:1")
    started = time.perf_counter()
    for _ in range(2000):
        server_from_string("tcp:8080:interface=127.0.0.1")
    per_parse = (time.perf_counter() - started) / 2000
    assert per_parse < 0.001  # generous: about 20 microseconds here


_pieces = st.one_of(
    st.sampled_from(
        ["tcp", "tcp6", "ssl", "tls", "unix", "systemd", "fd", "udp", ":", "=", "\\", "port",
         "interface", "backlog", "mode", "index", "name", "cert", "key", "host", "0", "80",
         "65536", "::1", "127.0.0.1", "/tmp/x", "-1", "1e9", "\0", " "]
    ),
    st.text(alphabet=string.printable, max_size=6),
    st.text(max_size=4),
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pieces, max_size=8).map("".join))
def test_any_string_parses_or_raises_endpoint_error(description: str) -> None:
    for parse_it in (server_from_string, client_from_string):
        try:
            parse_it(description)
        except EndpointError as exc:
            assert repr(description) in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_unicode_parses_or_raises_endpoint_error(description: str) -> None:
    for parse_it in (server_from_string, client_from_string):
        try:
            parse_it(description)
        except EndpointError as exc:
            assert str(exc).startswith("bad endpoint ")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=8), min_size=1, max_size=5))
def test_quoted_arguments_read_back_unchanged(values: list[str]) -> None:
    parsed = parse("anything:" + ":".join(quote(value) for value in values))
    assert parsed.kind == "anything"
    assert parsed.args == values
    assert parsed.kwargs == {}
    keyed = parse("anything:" + ":".join(f"k{i}={quote(v)}" for i, v in enumerate(values)))
    assert keyed.kwargs == {f"k{i}": value for i, value in enumerate(values)}
