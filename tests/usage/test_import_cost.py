"""`import tapster.usage` stays cheap: it is on the path of every `tapster --help`."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["asyncio", "logging", "typing", "re", "textwrap", "shutil", "inspect", "collections"]


def test_import_pulls_in_nothing_heavy() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import tapster.usage; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert all(name.startswith(("tapster", "_", "json")) for name in loaded), sorted(loaded)
