"""docs/deploy-systemd.md and docs/deploy-kubernetes.md, run as written.

The units and the manifest are read from the pages; tapster runs with their
arguments (the port and the folders moved to the test's own), against a fake
service manager for systemd and with Kubernetes' SIGTERM for the Deployment.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from support import ROOT, FakeServiceManager, free_port, wait_for


def http_get(port: int, path: str, timeout: float = 5.0) -> int:
    """The status code of ``GET path``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return int(data.split(b" ", 2)[1])


def code_blocks(page: str, language: str) -> list[str]:
    text = (ROOT / "docs" / page).read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def served_folder(tmp_path: Path) -> Path:
    public = tmp_path / "public"
    public.mkdir()
    (public / "healthz").write_text("ok\n")
    return public


@pytest.mark.slow
def test_the_systemd_service_unit(tapster_proc, tmp_path: Path) -> None:
    (unit,) = [block for block in code_blocks("deploy-systemd.md", "ini") if "[Service]" in block]
    assert "Type=notify-reload" in unit
    command = re.search(r"^ExecStart=(.*)$", unit, re.MULTILINE)
    watchdog = re.search(r"^WatchdogSec=(\d+)$", unit, re.MULTILINE)
    stop_timeout = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    assert command and watchdog and stop_timeout
    served_folder(tmp_path)
    port = free_port()
    args = [
        arg.replace("/var/log/app/app.log", str(tmp_path / "app.log"))
        .replace("/srv/app/public", str(tmp_path / "public"))
        .replace("/srv/app", str(tmp_path))
        .replace("tcp:8080", f"tcp:{port}:interface=127.0.0.1")
        for arg in shlex.split(command.group(1))[1:]
    ]
    timeout = float(args[args.index("--shutdown-timeout") + 1])
    assert int(stop_timeout.group(1)) > timeout
    manager = FakeServiceManager(tmp_path)
    try:
        env = manager.env(watchdog=float(watchdog.group(1)))
        proc = tapster_proc.start(*args, cwd=tmp_path, env=env)
        ready = manager.wait_for("READY=1")[-1]
        assert ready == f"READY=1\nSTATUS=2 of 2 workers ready\nMAINPID={proc.pid}"
        assert manager.pings(), "the first watchdog ping"
        assert http_get(port, "/healthz") == 200
        # systemctl reload: SIGHUP, then RELOADING=1 ... READY=1.
        proc.send_signal(signal.SIGHUP)
        messages = manager.wait_for("READY=1", count=2)
        assert messages[-2].startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert "reloaded at" in messages[-1]
        assert http_get(port, "/healthz") == 200
        # systemctl stop: SIGTERM, STOPPING=1, gone within TimeoutStopSec.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=int(stop_timeout.group(1))) == 0
        assert manager.messages()[-2].startswith("STOPPING=1\nSTATUS=stopping web: draining ")
    finally:
        manager.close()


@pytest.mark.slow
def test_the_kubernetes_deployment(tapster_proc, tmp_path: Path) -> None:
    (manifest,) = code_blocks("deploy-kubernetes.md", "yaml")
    line = re.search(r"^\s*args: (\[.*\])$", manifest, re.MULTILINE)
    grace = re.search(r"terminationGracePeriodSeconds: (\d+)", manifest)
    assert line and grace
    probes = set(re.findall(r"httpGet: \{path: (/\S+), port: 8080\}", manifest))
    assert len(re.findall(r"(startup|readiness|liveness)Probe:", manifest)) == 3
    port = free_port()
    args = [a.replace("tcp:8080", f"tcp:{port}:interface=127.0.0.1") for a in json.loads(line[1])]
    delay = float(args[args.index("--shutdown-delay") + 1])
    timeout = float(args[args.index("--shutdown-timeout") + 1])
    assert delay + timeout < int(grace[1])
    served_folder(tmp_path)
    with (tmp_path / "err.log").open("w") as err:
        proc = tapster_proc.start(*args, cwd=tmp_path, stderr=err)
        wait_for(lambda: "ready: 2 workers" in (tmp_path / "err.log").read_text(), 30, "ready")
        assert probes and all(http_get(port, path) == 200 for path in probes)
        results: list[tuple[float, int | None]] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    results.append((time.monotonic(), http_get(port, "/healthz")))
                except OSError:
                    results.append((time.monotonic(), None))
                    time.sleep(0.05)

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # what the kubelet sends
        code = proc.wait(timeout=delay + timeout)
        ended = time.monotonic() - signalled
        stop.set()
        for t in threads:
            t.join()
    assert code == 0
    during = [status for when, status in results if when < signalled + delay - 0.2]
    assert during and all(status == 200 for status in during), during.count(None)
    served_late = [when - signalled for when, status in results if status == 200]
    assert max(served_late) > delay - 0.5  # still serving near the end of the delay
    assert delay <= ended < delay + timeout
    text = (tmp_path / "err.log").read_text()
    assert f"not ready any more; accepting for {delay:g}s more" in text
