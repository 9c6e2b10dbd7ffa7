"""The shortcuts that keep discovery fast behave like the slow, obvious way."""

from __future__ import annotations

import os
import subprocess
import sys

CACHE = ".tapster-plugin-cache.json"
WRITE_PYC = {"PYTHONDONTWRITEBYTECODE": ""}  # this machine exports it; a user's usually doesn't


def widget(name: str) -> str:
    return f"from testkind import W\n{name} = W({name!r}, 'The {name} widget.')\n"


def test_a_cold_scan_runs_current_pyc_files_and_recompiles_stale_ones(sandbox):
    folder = sandbox.folder("proj")
    path = sandbox.module(folder, "a", widget("a"))
    old = (path.stat().st_mtime_ns // 10**9 - 100) * 10**9
    os.utime(path, ns=(old, old))
    first = sandbox.describe(**WRITE_PYC)
    assert sandbox.names(first) == ["a"]
    assert list((folder / "__pycache__").glob("a.*.pyc"))
    # No cache, no JSON module: the cache is written with the C encoder.
    assert "json" not in first["heavy"] and "re" not in first["heavy"]

    # Same size, same mtime, other content: like `import`, the current .pyc is what runs.
    path.write_text(widget("b"))
    os.utime(path, ns=(old, old))
    (folder / CACHE).unlink()
    assert sandbox.names(sandbox.describe(**WRITE_PYC)) == ["a"]

    # A newer mtime makes the .pyc stale: the module runs from its source again.
    os.utime(path, ns=(old + 5 * 10**9, old + 5 * 10**9))
    result = sandbox.describe(**WRITE_PYC)
    assert sandbox.names(result) == ["b"]
    assert result["imported"] == ["tapster.plugins.a"]


def test_a_module_imported_from_its_file_looks_imported_normally(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(
        folder,
        "probe",
        "import sys\n"
        "from testkind import W\n"
        "me = sys.modules[__name__]\n"
        "probe = W('probe', '|'.join([__name__, __package__, __spec__.name,"
        " str(__spec__.origin == __file__), str(me.__loader__ is __spec__.loader),"
        " str(__cached__.endswith('.pyc'))]))\n",
    )
    for _ in range(2):  # without a .pyc, then with one
        (folder / CACHE).unlink(missing_ok=True)
        result = sandbox.describe(**WRITE_PYC)
        description = result["plugins"][0]["fields"]["description"]
        name, package, spec_name, *checks = description.split("|")
        assert name == spec_name == "tapster.plugins.probe"
        assert package == "tapster.plugins"
        assert checks == ["True", "True", "True"]


def test_the_service_maker_kind_costs_no_asyncio():
    code = (
        "import sys\n"
        "from tapster.service import ServiceMaker\n"
        "assert 'asyncio' not in sys.modules, 'asyncio imported'\n"
        "from tapster.service import Service, shutdown\n"
        "assert 'asyncio' in sys.modules\n"
        "import tapster.service as s\n"
        "assert {'Application', 'MultiService', 'ServiceError'} <= set(dir(s))\n"
        "assert s.Application.__module__ == 'tapster.service._application'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_code_run_from_a_pyc_names_the_file_where_it_is_now(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(
        folder,
        "where",
        "from testkind import W\nwhere = W('where', (lambda: 0).__code__.co_filename)\n",
    )
    first = sandbox.describe(**WRITE_PYC)
    assert first["plugins"][0]["fields"]["description"] == str(folder / "where.py")
    moved = sandbox.root / "moved"
    (sandbox.root / "proj").rename(moved)
    sandbox.path[sandbox.path.index(sandbox.root / "proj")] = moved
    (moved / "tapster" / "plugins" / CACHE).unlink()
    result = sandbox.describe(**WRITE_PYC)
    assert result["plugins"][0]["fields"]["description"] == str(
        moved / "tapster" / "plugins" / "where.py"
    )


def test_the_help_listing_is_describe_plugins_in_two_lists(sandbox):
    """``describe_field`` (``tapster --help``'s listing) names what describe_plugins names."""
    first = sandbox.folder("first")
    second = sandbox.folder("second")
    sandbox.module(first, "a", widget("a") + "nameless = W('', 'no name: the attribute')\n")
    sandbox.module(
        first, "b", "from testkind import Both, Foreign\nx = Both('x')\ny = Foreign('y')\n"
    )
    sandbox.module(first, "c", "from testkind import Gadget, W\nw = W('w')\n")
    sandbox.module(second, "a", widget("shadowed"))
    sandbox.module(second, "d", widget("d"))
    sandbox.module(second, "broken", "raise RuntimeError('no')\n")
    for kind, field in [
        ("tests.plugin.Widget", "description"),
        ("tests.plugin.Gadget", "gname"),
        ("tests.plugin.Widget", "nosuchfield"),
    ]:
        for _ in range(2):  # scanned, then from the cache
            result = sandbox.run("fields", kind, field)
            assert result["fields"][0] == result["fields"][1] == result["expected"], kind
    assert result["expected"][:3] == [["a", ""], ["nameless", ""], ["x", ""]]
