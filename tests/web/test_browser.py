"""A real browser against ``tapster web``: headless Chromium driven over the
DevTools protocol (``tests/browser.py``, through the ``websockets`` client).

Chromium loads a directory listing, the test reads what the page shows, clicks
a folder link, then clicks a file link and checks the downloaded bytes.
Chromium is looked for when the test runs (not when it is collected) and, where
it is missing, installed from Debian's ``chromium`` package when the tests run as
root on a machine with apt-get (``support.ensure_tool``); the test is skipped,
with the reason, only when that is impossible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from browser import DevTools


def test_browser_listing_link_and_download(serve, tmp_path: Path, chromium: DevTools) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "guide").mkdir()
    (root / "guide" / "index.html").write_text(
        "<!doctype html><title>Guide</title><h1 id=h>Welcome to the guide</h1>"
    )
    payload = os.urandom(300_000)
    (root / "payload.bin").write_bytes(payload)
    (root / "notes & <todo>.txt").write_text("notes")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    web = serve("--path", str(root))

    cdp = chromium
    cdp.call(
        "Browser.setDownloadBehavior",
        behavior="allow",
        downloadPath=str(downloads),
        eventsEnabled=True,
    )
    target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
    session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    cdp.call("Page.enable", session)

    # 1. The listing, as the browser renders it.
    cdp.call("Page.navigate", session, url=f"{web.base}/")
    cdp.wait_event("Page.loadEventFired")
    shown = cdp.evaluate(
        session,
        "JSON.stringify({title: document.title, h1: document.querySelector('h1').innerText,"
        " rows: [...document.querySelectorAll('tbody tr')].map(r => r.innerText)})",
    )
    page = json.loads(shown)
    assert page["title"] == "Index of /" and page["h1"] == "Index of /"
    names = [row.split("\t")[0] for row in page["rows"]]
    assert names == ["guide/", "notes & <todo>.txt", "payload.bin"]
    assert "293.0 KiB" in page["rows"][2]

    # 2. Follow the folder link by clicking it.
    cdp.evaluate(session, "document.querySelector('a[href=\"guide/\"]').click()")
    cdp.wait_event("Page.loadEventFired")
    assert cdp.evaluate(session, "location.pathname") == "/guide/"
    assert cdp.evaluate(session, "document.getElementById('h').innerText") == (
        "Welcome to the guide"
    )

    # 3. Back to the listing, and download the file by clicking its link.
    cdp.call("Page.navigate", session, url=f"{web.base}/")
    cdp.wait_event("Page.loadEventFired")
    cdp.evaluate(session, "document.querySelector('a[href=\"payload.bin\"]').click()")
    cdp.wait_event("Browser.downloadProgress", timeout=30, state="completed")
    files = list(downloads.iterdir())
    assert [f.name for f in files] == ["payload.bin"]
    assert files[0].read_bytes() == payload
