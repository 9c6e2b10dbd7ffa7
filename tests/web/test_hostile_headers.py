"""Random values for every request header the server reads, against a real ``tapster web``.

The server reads these headers itself: Range, If-Range, If-None-Match,
If-Modified-Since, Accept-Encoding, Accept (listings), Authorization,
Content-Length, Expect, Host (the WSGI environ), Referer and User-Agent (the
access log); httptools reads Transfer-Encoding, Connection and Content-Length
for framing; every header reaches a WSGI application's environ. The headers it
ignores today (If-Match, If-Unmodified-Since, X-Forwarded-*) are fed too, so
that a future reader of them is covered. Whatever the bytes, the answer is
never a 5xx and the log never shows an error or a traceback.
"""

from __future__ import annotations

import base64
import re
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

HEADERS = [
    b"Range",
    b"If-Range",
    b"If-None-Match",
    b"If-Match",
    b"If-Modified-Since",
    b"If-Unmodified-Since",
    b"Accept-Encoding",
    b"Accept",
    b"Authorization",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Connection",
    b"Host",
    b"Expect",
    b"Referer",
    b"User-Agent",
    b"Content-Type",
    b"X-Forwarded-For",
    b"X-Forwarded-Proto",
    b"X-Forwarded-Host",
]

# Files kept in memory, sent with sendfile, compressed, a listing, and a WSGI fallthrough.
PATHS = [b"/hello.txt", b"/big.bin", b"/style.css", b"/", b"/sub/", b"/nothing-here"]

APP = """
def application(environ, start_response):
    body = repr(sorted((k, v) for k, v in environ.items() if isinstance(v, str))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

_digits = st.integers(1, 6000).map(lambda n: b"9" * n)
_token = st.sampled_from(
    [
        b"bytes=",
        b"-",
        b",",
        b"gzip",
        b";q=",
        b"W/",
        b'"',
        b"*",
        b"Basic ",
        b"100-continue",
        b"chunked",
        b"close",
        b"keep-alive",
        b"GMT",
        b"Sun, 06 Nov 1994 08:49:37 GMT",
        b"Sunday, 06-Nov-94 08:49:37 GMT",
        b"Sun Nov  6 08:49:37 1994",
        b"\xff\xfe\xe9",
        b"\x00",
        b"\x7f",
        b"\t",
        b" ",
        b"application/json",
        b"=",
        b":",
        base64.b64encode(b"user:secret"),
        base64.b64encode(b"\xff\xfe:\x00\x80"),
        b"e",
        b"nan",
        b"inf",
    ]
)
# Header values: any byte but CR and LF (which end the line), or pieces of what the
# parsers look for, glued together, including digit strings past Python's int limit.
_value = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.lists(st.one_of(_token, _digits, st.binary(max_size=8)), max_size=8).map(
        lambda parts: b"".join(parts).replace(b"\r", b"").replace(b"\n", b"")
    ),
)
_number = st.one_of(st.integers(0, 3000).map(lambda n: b"%d" % n), _digits, st.just(b""))
_spaces = st.sampled_from([b"", b" ", b"\t", b"\x00", b"\xa0"])
_range = st.lists(st.tuples(_spaces, _number, st.just(b"-"), _number), min_size=1, max_size=4).map(
    lambda items: b"bytes=" + b",".join(b"".join(item) for item in items)
)
_date = st.tuples(
    st.sampled_from([b"Sun,", b"Sunday,", b"Sun", b"Xyz,"]),
    st.one_of(_number, st.sampled_from([b"06", b"31", b"06-Nov-94", b"\xb2\xb3"])),
    st.sampled_from([b"Nov", b"Feb", b"Nox", b""]),
    st.one_of(_number, st.just(b"1994")),
    st.sampled_from([b"08:49:37", b"99:99:99", b"\xb2\xb3:00:00", b"1:2:3"]),
    st.sampled_from([b"GMT", b"UTC", b""]),
).map(b" ".join)
_etag = st.lists(
    st.tuples(st.sampled_from([b"", b"W/", b"*"]), st.just(b'"'), _value), max_size=3
).map(lambda tags: b", ".join(b"".join(tag) + b'"' for tag in tags))
_quality = st.tuples(
    st.sampled_from([b"gzip", b"x-gzip", b"GZIP", b"br", b"*"]),
    st.sampled_from([b"", b";q=", b"; q = ", b";q"]),
    st.one_of(_number, st.sampled_from([b"0.5", b"nan", b"1e999", b"-0", b"\xff"])),
).map(b"".join)
_basic = st.one_of(
    st.just(b"Basic " + base64.b64encode(b"user:secret")),
    st.binary(max_size=40).map(lambda raw: b"Basic " + base64.b64encode(raw)),
    st.binary(max_size=40).map(lambda raw: b"Basic " + base64.b64encode(b"user:" + raw)),
)
#: What each header's own parser looks for, so that the handlers (not only the
#: HTTP parser) get the odd values; every header also gets arbitrary bytes.
_SHAPED = {
    b"Range": _range,
    b"If-Range": st.one_of(_date, _etag),
    b"If-None-Match": _etag,
    b"If-Match": _etag,
    b"If-Modified-Since": _date,
    b"If-Unmodified-Since": _date,
    b"Accept-Encoding": st.lists(_quality, max_size=3).map(b", ".join),
    b"Accept": st.lists(_quality.map(lambda q: b"application/json" + q[4:]), max_size=3).map(
        b",".join
    ),
    b"Authorization": _basic,
    b"Content-Length": _number,
    b"Host": st.tuples(_value, st.sampled_from([b"", b":", b"]:", b"[::1]:"]), _number).map(
        b"".join
    ),
    b"Expect": st.sampled_from([b"100-continue", b"100-Continue", b"\xff", b""]),
}
_header = st.sampled_from(HEADERS).flatmap(
    lambda name: st.tuples(st.just(name), st.one_of(_SHAPED.get(name, _value), _value))
)
_request = st.tuples(
    st.sampled_from([b"GET", b"HEAD", b"POST"]),
    st.sampled_from(PATHS),
    st.lists(_header, min_size=1, max_size=6),
)

_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3}) ", re.MULTILINE)


@pytest.fixture
def hostile_site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "hello.txt").write_text("hello world\n" * 100)
    (root / "big.bin").write_bytes(bytes(range(256)) * 4200)  # over SMALL_FILE
    (root / "style.css").write_text("body { color: red; }\n" * 50)
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("a")
    (tmp_path / "fuzzapp.py").write_text(APP)
    return root


def _exchange(port: int, raw: bytes) -> bytes:
    """Send one request, say we are done sending, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)  # the server answers what it got, then closes
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
def test_random_header_values_never_make_a_server_error(
    serve, hostile_site: Path, tmp_path: Path
) -> None:
    log = tmp_path / "web.log"
    web = serve(
        "--path",
        str(hostile_site),
        "--wsgi",
        "fuzzapp:application",
        "--auth",
        "memory:user:secret",
        "--auth",
        "anonymous",
        cwd=tmp_path,
        runner=["--logfile", str(log)],
    )
    seen: set[int] = set()

    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_request)
    @example((b"GET", b"/hello.txt", [(b"Range", b"bytes=0-" + b"9" * 5000)]))
    @example((b"GET", b"/big.bin", [(b"Range", b"bytes=" + b"9" * 5000 + b"-")]))
    @example((b"GET", b"/hello.txt", [(b"If-Modified-Since", b"Sun Nov " + b"9" * 5000)]))
    @example((b"POST", b"/nothing-here", [(b"Content-Length", b"9" * 5000)]))
    @example((b"GET", b"/", [(b"Accept", b"application/json;q=" + b"9" * 5000)]))
    # Credentials that are wrong reach the portal (401), whatever the random draw covers.
    @example((b"GET", b"/hello.txt", [(b"Authorization", b"Basic " + b"9" * 5000)]))
    def attack(request: tuple[bytes, bytes, list[tuple[bytes, bytes]]]) -> None:
        method, path, headers = request
        raw = method + b" " + path + b" HTTP/1.1\r\n"
        raw += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        answer = _exchange(web.port, raw + b"\r\n")
        statuses = [int(code) for code in _STATUS.findall(answer[:200])]
        seen.update(statuses)
        assert not any(code >= 500 for code in statuses), (raw[:300], answer[:300])

    attack()
    assert web.proc.poll() is None, "the server died"
    # The attack reached the handlers, not only the parser's 400.
    assert {200, 206, 416, 401} <= seen, seen
    text = log.read_text()
    assert "ERROR" not in text and "Traceback" not in text, text[-3000:]
