"""The operator page (``GET /status``) in headless Chromium, with ``--workers 2``.

The browser loads the page the supervisor serves, the test reads what it shows
(the summary, the workers' table), kills a worker, and waits for the page's own
refresh to show the replacement: a new PID and one restart in that worker's row.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from admin_client import get_json, request, wait_for
from browser import DevTools
from support import free_port

READ_PAGE = """JSON.stringify({
  title: document.title,
  state: document.getElementById('state').innerText,
  ready: document.getElementById('ready').innerText,
  services: [...document.querySelectorAll('#services tbody tr')].map(r => r.innerText),
  workers: [...document.querySelectorAll('#workers tbody tr')].map(
    r => [...r.cells].map(c => c.innerText)),
})"""


def read_page(cdp: DevTools, session: str) -> dict:
    return json.loads(cdp.evaluate(session, READ_PAGE))


@pytest.mark.slow
def test_status_page_in_chromium_shows_a_killed_worker_restarted(
    tapster_proc, tmp_path: Path, chromium: DevTools
) -> None:
    admin, web = free_port(), free_port()
    (tmp_path / "site").mkdir()
    proc = tapster_proc.start(
        "--logfile", str(tmp_path / "app.log"),
        "--admin", f"tcp:{admin}:interface=127.0.0.1", "-w", "2", "--worker-timeout", "3",
        "web", "--path", str(tmp_path / "site"), "--listen", f"tcp:{web}:interface=127.0.0.1",
        cwd=tmp_path,
    )  # fmt: skip
    wait_for(lambda: request(admin, "/readyz")[0] == 200, 30, "readiness")

    cdp = chromium
    target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
    session = cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    cdp.call("Page.enable", session)
    cdp.call("Page.navigate", session, url=f"http://127.0.0.1:{admin}/status")
    cdp.wait_event("Page.loadEventFired")

    # 1. The page renders, and the worker table fills with both workers.
    page = read_page(cdp, session)
    assert page["title"].endswith(": tapster status")
    assert (page["state"], page["ready"]) == ("ready", "yes")
    assert any(f"tcp:127.0.0.1:{web}" in row for row in page["services"]), page["services"]
    rows = page["workers"]
    assert [row[0] for row in rows] == ["1", "2"]
    assert [row[2] for row in rows] == ["ready", "ready"]
    assert [row[5] for row in rows] == ["0", "0"]
    assert all(row[4].endswith(" MiB") for row in rows), rows
    _, info = get_json(admin, "/status.json")
    assert [row[1] for row in rows] == [str(w["pid"]) for w in info["workers"]]

    # 2. Worker 1 killed: the page's own refresh shows it replaced and counted.
    victim = int(rows[0][1])
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        cdp.wait_event("Page.loadEventFired", timeout=10)  # the page reloads itself
        rows = read_page(cdp, session)["workers"]
        if rows[0][1] not in ("", str(victim)) and rows[0][2] == "ready":
            break
        assert time.monotonic() < deadline, rows
    assert rows[0][5] == "1" and rows[1][5] == "0", rows
    assert rows[1][1] == str(info["workers"][1]["pid"])
    assert proc.poll() is None
