"""The sans-IO pieces on their own: path splitting, ranges, content negotiation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapster.web._gzip import accepts_gzip
from tapster.web._http import http_date, parse_http_date
from tapster.web._listing import human_size, wants_json
from tapster.web._options import size
from tapster.web._paths import BadPathError, split_path
from tapster.web._ranges import UnsatisfiableError, parse_range


@given(st.binary(max_size=64))
def test_split_path_never_yields_an_escape(raw: bytes) -> None:
    try:
        segments, _ = split_path(b"/" + raw)
    except BadPathError:
        return
    for seg in segments:
        assert seg not in ("", ".", "..")
        assert "/" not in seg and "\\" not in seg and "\x00" not in seg


def test_split_path_examples() -> None:
    assert split_path(b"/a//b/c%20d/") == (("a", "b", "c d"), True)
    assert split_path(b"/") == ((), True)
    assert split_path(b"/%C3%A9") == (("é",), False)
    for bad in (b"/..", b"/a/%2E%2e/b", b"/a%2fb", b"/a%5cb", b"/a%00", b"/%ff", b"x"):
        with pytest.raises(BadPathError):
            split_path(bad)


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=10_000))
def test_parse_range_is_total(value: bytes, length: int) -> None:
    try:
        ranges = parse_range(b"bytes=" + value, length)
    except UnsatisfiableError:
        return
    if ranges is None:
        return
    previous = -2
    for first, last in ranges:
        assert 0 <= first <= last < length
        assert first > previous + 1  # sorted, merged
        previous = last


def test_parse_range_examples() -> None:
    assert parse_range(b"bytes=0-0", 10) == [(0, 0)]
    assert parse_range(b"bytes=-3", 10) == [(7, 9)]
    assert parse_range(b"bytes=8-", 10) == [(8, 9)]
    assert parse_range(b"bytes=0-2,1-5,7-8", 10) == [(0, 5), (7, 8)]
    assert parse_range(b"bytes=0-2,3-4", 10) == [(0, 4)]
    assert parse_range(b"items=0-2", 10) is None
    assert parse_range(b"bytes=3-1", 10) is None
    with pytest.raises(UnsatisfiableError):
        parse_range(b"bytes=10-", 10)
    with pytest.raises(UnsatisfiableError):
        parse_range(b"bytes=-0", 10)


def test_negotiation_helpers() -> None:
    assert accepts_gzip(b"gzip, deflate, br")
    assert accepts_gzip(b"br;q=1.0, gzip;q=0.5")
    assert not accepts_gzip(b"gzip;q=0")
    assert not accepts_gzip(b"identity")
    assert not accepts_gzip(None)
    assert wants_json(b"application/json")
    assert not wants_json(b"text/html,application/json;q=0.9")
    assert not wants_json(b"*/*")
    assert human_size(1023) == "1023 B" and human_size(1536) == "1.5 KiB"
    assert size("10M") == 10 * 1024 * 1024 and size("512k") == 512 * 1024 and size("7") == 7
    with pytest.raises(ValueError):
        size("ten")


@given(st.text(max_size=16))
def test_a_realm_that_passes_the_check_always_makes_a_header(name: str) -> None:
    """Whatever ``--realm`` lets through, the 401 challenge can be encoded (no 500s)."""
    from tapster.cred import Portal
    from tapster.web._auth import BasicAuth, WebRealm, check_realm

    try:
        check_realm(name)
    except ValueError:
        with pytest.raises(ValueError):
            BasicAuth(Portal(WebRealm(), []), name)
        return
    response = BasicAuth(Portal(WebRealm(), []), name).challenge()
    assert response.status == 401
    assert f'realm="{name}"'.encode() in response.headers


def test_modern_types_are_known_and_user_overrides_win() -> None:
    from tapster.web._mime import MimeTable

    table = MimeTable()
    assert table.guess("README.md") == "text/markdown"
    assert table.guess("app.mjs") == "text/javascript"
    assert table.guess("font.woff2") == "font/woff2"
    assert table.guess("notes.unknownext") == "application/octet-stream"
    assert MimeTable({"md": "text/plain"}).guess("README.MD") == "text/plain"


# HTTP dates are written in tapster.web (email.utils costs a server's start-up);
# these tests hold them to the standard library's answers.

_LAST_SECOND = 253402300799  # 9999-12-31 23:59:59 UTC


@given(st.integers(min_value=0, max_value=_LAST_SECOND))
def test_http_date_matches_email_utils(timestamp: int) -> None:
    from email.utils import formatdate

    assert http_date(timestamp) == formatdate(timestamp, usegmt=True)


@given(st.integers(min_value=0, max_value=_LAST_SECOND))
def test_parse_http_date_reads_all_three_forms(timestamp: int) -> None:
    import time

    fixdate = http_date(timestamp)
    assert parse_http_date(fixdate) == timestamp
    assert parse_http_date(time.asctime(time.gmtime(timestamp))) == timestamp
    t = time.gmtime(timestamp)
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", t)
    this_year = time.gmtime().tm_year
    if this_year - 49 <= t.tm_year <= this_year + 50:  # what a two-digit year can say
        assert parse_http_date(rfc850) == timestamp


def test_parse_http_date_examples_and_refusals() -> None:
    # RFC 9110 section 5.6.7's own example, in its three forms.
    for text in (
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ):
        assert parse_http_date(text) == 784111777, text
    for bad in (
        "",
        "garbage",
        "Sun, 06 Nov 1994 08:49:37 +0000",  # HTTP dates are GMT
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 6 Nov 1994 08:49:37 GMT",  # IMF-fixdate has two-digit days
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:49 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun Nov  6 08:49:37 94",
        "Sun, 06 Nov 1994 +8:49:37 GMT",
    ):
        assert parse_http_date(bad) is None, bad
    assert parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT") == 1709164800
    assert parse_http_date("Sat, 29 Feb 2025 00:00:00 GMT") is None
