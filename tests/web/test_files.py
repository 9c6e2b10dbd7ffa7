"""Static files over real HTTP: bodies, types, HEAD, conditionals, ranges, gzip."""

from __future__ import annotations

import email.parser
import gzip
import os
import subprocess
import time
from pathlib import Path

import pytest


def test_file_body_type_and_length(serve, site: Path) -> None:
    web = serve("--path", str(site))
    status, headers, body = web.get("/hello.txt")
    assert status == 200
    assert body == (site / "hello.txt").read_bytes()
    assert headers["Content-Type"] == "text/plain"
    assert headers["Content-Length"] == str(len(body))
    assert headers["ETag"].startswith('"')
    assert headers["Last-Modified"].endswith("GMT")
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, body = web.get("/one.bin")
    assert headers["Content-Type"] == "application/octet-stream"
    assert body == (site / "one.bin").read_bytes()


def test_large_file_sendfile(serve, site: Path) -> None:
    web = serve("--path", str(site))
    status, headers, body = web.get("/big.bin")
    assert status == 200
    assert int(headers["Content-Length"]) == (site / "big.bin").stat().st_size
    assert body == (site / "big.bin").read_bytes()


def test_head_has_headers_no_body(serve, site: Path) -> None:
    web = serve("--path", str(site))
    status, headers, body = web.get("/hello.txt", method="HEAD")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == str((site / "hello.txt").stat().st_size)


def test_changed_file_is_served_fresh(serve, site: Path) -> None:
    web = serve("--path", str(site))
    assert web.get("/data.json")[2] == b'{"x": 1}'
    (site / "data.json").write_text('{"x": 22}')
    assert web.get("/data.json")[2] == b'{"x": 22}'
    (site / "data.json").unlink()
    assert web.get("/data.json")[0] == 404


def test_conditional_requests(serve, site: Path) -> None:
    web = serve("--path", str(site))
    _, headers, _ = web.get("/hello.txt")
    etag, modified = headers["ETag"], headers["Last-Modified"]
    status, h304, body = web.get("/hello.txt", {"If-None-Match": etag})
    assert status == 304 and body == b"" and h304["ETag"] == etag
    assert web.get("/hello.txt", {"If-None-Match": f'"nope", W/{etag}'})[0] == 304
    assert web.get("/hello.txt", {"If-None-Match": "*"})[0] == 304
    assert web.get("/hello.txt", {"If-None-Match": '"other"'})[0] == 200
    assert web.get("/hello.txt", {"If-Modified-Since": modified})[0] == 304
    assert web.get("/hello.txt", {"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})[0] == 200
    assert web.get("/hello.txt", {"If-Modified-Since": "garbage"})[0] == 200
    # If-None-Match wins over If-Modified-Since.
    assert (
        web.get("/hello.txt", {"If-None-Match": '"other"', "If-Modified-Since": modified})[0] == 200
    )


def test_single_range(serve, site: Path) -> None:
    web = serve("--path", str(site))
    data = (site / "hello.txt").read_bytes()
    status, headers, body = web.get("/hello.txt", {"Range": "bytes=6-10"})
    assert status == 206 and body == data[6:11]
    assert headers["Content-Range"] == f"bytes 6-10/{len(data)}"
    assert web.get("/hello.txt", {"Range": "bytes=-5"})[2] == data[-5:]
    assert web.get("/hello.txt", {"Range": "bytes=1190-"})[2] == data[1190:]
    # Beyond the end is clipped.
    assert web.get("/hello.txt", {"Range": "bytes=1195-5000"})[2] == data[1195:]


def test_range_on_large_file(serve, site: Path) -> None:
    web = serve("--path", str(site))
    data = (site / "big.bin").read_bytes()
    status, _, body = web.get("/big.bin", {"Range": "bytes=2000000-2000099"})
    assert status == 206 and body == data[2000000:2000100]


def _parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    msg = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    return [(p["Content-Range"], p.get_payload(decode=True)) for p in msg.get_payload()]


def test_multiple_ranges(serve, site: Path) -> None:
    web = serve("--path", str(site))
    for name in ("hello.txt", "big.bin"):
        data = (site / name).read_bytes()
        status, headers, body = web.get(f"/{name}", {"Range": "bytes=0-4, 100-109, -3"})
        assert status == 206
        assert headers["Content-Type"].startswith("multipart/byteranges; boundary=")
        assert int(headers["Content-Length"]) == len(body)
        parts = _parts(headers["Content-Type"], body)
        size = len(data)
        assert parts == [
            (f"bytes 0-4/{size}", data[0:5]),
            (f"bytes 100-109/{size}", data[100:110]),
            (f"bytes {size - 3}-{size - 1}/{size}", data[-3:]),
        ]


def test_overlapping_ranges_are_merged(serve, site: Path) -> None:
    web = serve("--path", str(site))
    data = (site / "hello.txt").read_bytes()
    status, _headers, body = web.get("/hello.txt", {"Range": "bytes=0-10,5-20"})
    assert status == 206 and body == data[0:21]


def test_unsatisfiable_and_ignored_ranges(serve, site: Path) -> None:
    web = serve("--path", str(site))
    size = (site / "hello.txt").stat().st_size
    status, headers, _ = web.get("/hello.txt", {"Range": "bytes=99999-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    assert web.get("/hello.txt", {"Range": "lines=1-2"})[0] == 200
    assert web.get("/hello.txt", {"Range": "bytes=5-1"})[0] == 200
    assert web.get("/hello.txt", {"Range": "bytes=abc"})[0] == 200
    many = ",".join(f"{i}-{i}" for i in range(0, 200, 2))
    assert web.get("/hello.txt", {"Range": f"bytes={many}"})[0] == 200


def test_ranges_with_numbers_of_any_length(serve, site: Path, tmp_path: Path) -> None:
    """Positions longer than Python's 4300-digit int limit: RFC answers, never a 500."""
    log = tmp_path / "web.log"
    web = serve("--path", str(site), runner=["--logfile", str(log)])
    data = (site / "hello.txt").read_bytes()
    size = len(data)
    huge = "9" * 5000
    for name in ("hello.txt", "big.bin"):  # a body in memory, a file sent with sendfile
        whole = (site / name).read_bytes()
        status, headers, body = web.get(f"/{name}", {"Range": f"bytes=0-{huge}"})
        assert (status, headers["Content-Range"]) == (206, f"bytes 0-{len(whole) - 1}/{len(whole)}")
        assert body == whole
    assert web.get("/hello.txt", {"Range": f"bytes=-{huge}"})[2] == data
    status, headers, _ = web.get("/hello.txt", {"Range": f"bytes={huge}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    assert web.get("/hello.txt", {"Range": f"bytes={huge}-{huge}"})[0] == 416
    assert web.get("/hello.txt", {"Range": f"bytes={'0' * 5000}5-7"})[2] == data[5:8]
    assert web.get("/hello.txt", {"Range": f"bytes={huge}-{'1' * 4999}"})[0] == 200  # last < first
    assert web.get("/hello.txt", {"Range": f"bytes=0-1,{huge}-"})[2] == data[:2]
    text = log.read_text()
    assert "ERROR" not in text and "Traceback" not in text, text


def test_if_range(serve, site: Path) -> None:
    web = serve("--path", str(site))
    _, headers, _ = web.get("/hello.txt")
    assert web.get("/hello.txt", {"Range": "bytes=0-1", "If-Range": headers["ETag"]})[0] == 206
    assert web.get("/hello.txt", {"Range": "bytes=0-1", "If-Range": '"stale"'})[0] == 200
    lm = headers["Last-Modified"]
    assert web.get("/hello.txt", {"Range": "bytes=0-1", "If-Range": lm})[0] == 206


def test_gzip_when_accepted_and_cached(serve, site: Path) -> None:
    web = serve("--path", str(site))
    data = (site / "style.css").read_bytes()
    status, headers, body = web.get("/style.css", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == data
    assert int(headers["Content-Length"]) == len(body) < len(data)
    # Second time: the same bytes (cached, deterministic).
    assert web.get("/style.css", {"Accept-Encoding": "gzip"})[2] == body
    # Its ETag differs from the identity one, and works for 304.
    etag = headers["ETag"]
    assert etag != web.get("/style.css")[1]["ETag"]
    assert web.get("/style.css", {"Accept-Encoding": "gzip", "If-None-Match": etag})[0] == 304
    # Refused gzip, binary files and ranges stay identity.
    _, h, b = web.get("/style.css", {"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in h and b == data
    _, h, _ = web.get("/one.bin", {"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in h
    _, h, b = web.get("/style.css", {"Accept-Encoding": "gzip", "Range": "bytes=0-3"})
    assert "Content-Encoding" not in h and b == data[:4]


def test_curl_download_and_resume(serve, site: Path, tmp_path: Path) -> None:
    web = serve("--path", str(site))
    out = tmp_path / "big.out"
    out.write_bytes((site / "big.bin").read_bytes()[:1000000])
    subprocess.run(
        ["curl", "-sSf", "-C", "-", "-o", str(out), f"{web.base}/big.bin"],
        check=True,
        timeout=30,
    )
    assert out.read_bytes() == (site / "big.bin").read_bytes()
    res = subprocess.run(
        ["curl", "-sS", "--compressed", f"{web.base}/style.css"],
        check=True,
        timeout=30,
        capture_output=True,
    )
    assert res.stdout == (site / "style.css").read_bytes()


def test_keep_alive_and_pipelining(serve, site: Path) -> None:
    web = serve("--path", str(site))
    c = web.conn()
    for _ in range(5):
        c.request("GET", "/hello.txt")
        r = c.getresponse()
        assert r.status == 200 and len(r.read()) == 1200
    c.close()
    req = b"GET /data.json HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /one.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    raw = web.raw(req * 20 + last)
    assert raw.count(b"HTTP/1.1 200 OK") == 21
    assert raw.endswith((site / "one.bin").read_bytes())


def test_http10(serve, site: Path) -> None:
    web = serve("--path", str(site))
    raw = web.raw(b"GET /data.json HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(b'{"x": 1}')
    assert b"Connection: close" in raw


def test_methods(serve, site: Path) -> None:
    web = serve("--path", str(site))
    status, headers, _ = web.get("/hello.txt", method="POST", body=b"x")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert web.get("/hello.txt", method="DELETE")[0] == 405


def test_mime_type_option(serve, site: Path) -> None:
    (site / "notes.md").write_text("# hi")
    web = serve("--path", str(site), "--mime-type", "md=text/markdown; charset=utf-8")
    assert web.get("/notes.md")[1]["Content-Type"] == "text/markdown; charset=utf-8"


def test_index_option(serve, site: Path) -> None:
    (site / "index-less" / "home.htm").write_text("home")
    web = serve("--path", str(site), "--index", "missing.html", "--index", "home.htm")
    assert web.get("/index-less/")[2] == b"home"
    assert web.get("/docs/")[0] == 200  # listing (index.html is no longer an index)


def test_many_concurrent_clients(serve, site: Path) -> None:
    import concurrent.futures

    web = serve("--path", str(site), "--no-access-log")
    data = (site / "one.bin").read_bytes()

    def fetch(_: int) -> bool:
        return web.get("/one.bin")[2] == data

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        assert all(pool.map(fetch, range(200)))
    assert time.monotonic() - start < 30


def test_first_requests_in_a_crowd(serve, site: Path, tmp_path: Path) -> None:
    """Many clients ask at once for files nobody has read yet: each file is read
    once and compressed once for all of them, and every client gets the right bytes.

    The server is stopped (SIGSTOP) while the crowd connects and sends, so all
    the requests are waiting when it goes on: each arrives before any read can
    end. The kernel counts the bytes the server reads (``rchar`` in
    /proc/PID/io, which counts sendfile's reads too: so the binary file is one
    answered from memory, below ``SENDFILE_FROM``); the server's debug log has one
    line per compression.
    """
    import http.client
    import signal
    import socket

    from tapster.web._static import SENDFILE_FROM

    text = b"".join(b"row %d of a fresh stylesheet;\n" % i for i in range(20000))
    blob = os.urandom(SENDFILE_FROM - 1000)  # in memory once read, and answered from there
    (site / "fresh.css").write_bytes(text)
    (site / "fresh.bin").write_bytes(blob)
    log = tmp_path / "tapster.log"
    web = serve(
        "--path",
        str(site),
        "--no-access-log",
        runner=["--log-level", "debug", "--logfile", str(log)],
    )
    pid = web.proc.pid
    # The first compression imports gzip (reading its files): not in the count.
    assert web.get("/hello.txt", {"Accept-Encoding": "gzip"})[1]["Content-Encoding"] == "gzip"
    before = _bytes_read(pid)
    crowd: list[tuple[bool, socket.socket]] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(40):
            css = bool(i % 2)
            s = socket.create_connection(("127.0.0.1", web.port), timeout=10)
            crowd.append((css, s))
            s.sendall(
                b"GET /fresh.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
                if css
                else b"GET /fresh.bin HTTP/1.1\r\nHost: x\r\n\r\n"
            )
    finally:
        os.kill(pid, signal.SIGCONT)
    for css, s in crowd:
        with s:
            r = http.client.HTTPResponse(s)
            r.begin()
            body = r.read()
            assert r.status == 200
            if css:
                assert r.getheader("Content-Encoding") == "gzip"
                assert gzip.decompress(body) == text
            else:
                assert body == blob
    read = _bytes_read(pid) - before
    # Each file once, plus the requests themselves (a few KiB): a second read
    # of either file would add at least the binary file's size.
    files = len(text) + len(blob)
    assert files <= read < files + len(blob) // 2, f"read {read} bytes for {files} bytes of files"
    web.proc.terminate()  # the log is complete once the server has stopped
    web.proc.wait(timeout=10)
    lines = log.read_text().splitlines()
    compressed = [line for line in lines if "Compressed " in line and "fresh.css" in line]
    assert len(compressed) == 1, compressed


def _bytes_read(pid: int) -> int:
    """Bytes the process (all its threads) has read so far, as the kernel counts them."""
    try:
        with open(f"/proc/{pid}/io") as fh:
            fields = dict(line.split(": ") for line in fh.read().splitlines())
    except FileNotFoundError:
        pytest.skip("this kernel keeps no I/O counts (/proc/PID/io)")
    return int(fields["rchar"])
