"""The ``apps`` case's WebSocket load client against a real ``tapster web --asgi``.

The bench's peers are not installed in CI, but its own client must keep working: it counts
echoes only when each one comes back byte for byte, so a broken server or client fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cases import apps  # noqa: E402 - needs the repository root on sys.path first


def test_websocket_load_client_counts_checked_echoes(tapster_proc, tmp_path: Path) -> None:
    (tmp_path / "hello_asgi.py").write_text(apps._HELLO_ASGI)
    (tmp_path / "ws_load.py").write_text(apps._WS_LOAD)
    port = free_port()
    tapster_proc.start(
        "web",
        "--asgi",
        "hello_asgi:app",
        "--no-access-log",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        cwd=tmp_path,
    )
    wait_for_port(port)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "ws_load.py"), str(port), "4", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rate, total = (float(word) for word in done.stdout.split())
    assert rate > 100 and total >= rate
