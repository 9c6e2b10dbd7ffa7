"""docs/services.md stays true: its example files are written out and run for real."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import ROOT, free_port, run_tapster, tapster_env, wait_for_port

DOC = ROOT / "docs" / "services.md"
BLOCK = re.compile(r"<!-- file: (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)


def write_examples(folder: Path) -> list[str]:
    written = []
    for match in BLOCK.finditer(DOC.read_text()):
        target = folder / match["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(match["code"])
        written.append(match["path"])
    return written


def test_myproject_example_serves_on_the_port_given(tmp_path: Path, tapster_proc: Any) -> None:
    written = write_examples(tmp_path)
    assert "MyProject/tapster/plugins/myproject_plugin.py" in written
    project = tmp_path / "MyProject"
    help_text = run_tapster(["myproject", "--help"], cwd=project)
    assert help_text.returncode == 0, help_text.stderr
    assert "1235" in help_text.stdout  # the seed's default port
    port = free_port()
    proc = tapster_proc.start("myproject", "--port", str(port), cwd=project)
    try:
        wait_for_port(port, timeout=20)
    except TimeoutError:
        proc.kill()
        raise AssertionError(proc.communicate()[1]) from None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"hello\n")
        reply = b""
        while not reply.endswith(b"\n"):
            reply += conn.recv(100)
    assert reply == b"woof! hello\n"


def test_endpoint_type_plugin_example_is_found(tmp_path: Path) -> None:
    write_examples(tmp_path)
    code = (
        "from tapster.endpoints import server_from_string\n"
        "endpoint = server_from_string('local:0')\n"
        "[sock] = endpoint.bind()\n"
        "print(endpoint.address_of(sock).rsplit(':', 1)[0])\n"
        "try:\n"
        "    server_from_string('local:0:interface=1.2.3.4')\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "MyProject",
        env=tapster_env({"PYTHONPATH": str(tmp_path / "MyProject")}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "tcp:127.0.0.1",
        "bad endpoint 'local:0:interface=1.2.3.4': unknown keyword 'interface' for type 'local'",
    ]
