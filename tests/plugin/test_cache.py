"""The cache: warm starts import nothing, changes invalidate exactly what changed."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

CACHE = ".tapster-plugin-cache.json"


def widget_module(name: str) -> str:
    return f"from testkind import W\n{name} = W({name!r}, 'The {name} widget.')\n"


@pytest.fixture
def three(sandbox):
    """A folder with modules a, b, c, each defining one widget; cache warmed."""
    folder = sandbox.folder("proj")
    for name in ("a", "b", "c"):
        sandbox.module(folder, name, widget_module(name))
    cold = sandbox.describe()
    assert sandbox.names(cold) == ["a", "b", "c"]
    assert not any(p["from_cache"] for p in cold["plugins"])
    return folder


def test_warm_start_imports_no_plugin_module_nor_heavy_modules(sandbox, three):
    warm = sandbox.describe()
    assert sandbox.names(warm) == ["a", "b", "c"]
    assert all(p["from_cache"] for p in warm["plugins"])
    assert warm["imported"] == []
    # Neither asyncio nor logging, nor the slow importlib.metadata, nor json's re.
    if not warm["builtins_rescanned"]:  # see conftest: others may be editing tapster's own
        assert warm["heavy"] == []
    assert warm["stderr"] == ""


def test_cache_is_json_beside_the_folder(sandbox, three):
    document = json.loads((three / CACHE).read_text())
    assert document["format"] == "tapster-plugin-cache"
    # Flat lists: the module names, sorted, and their sizes and mtimes in that order.
    assert document["modules"] == ["a", "b", "c"]
    stamps = []
    for name in ("a", "b", "c"):
        st = os.stat(three / f"{name}.py")
        stamps += [st.st_size, st.st_mtime_ns]
    assert document["stamps"] == stamps
    assert document["errors"] == []
    # Each shape (kinds, fields) once under "schemas"; the plugins in runs of one shape,
    # a run being columns: [schema index, modules, attributes, names per kind, values per field].
    assert document["schemas"] == [[["tests.plugin.Widget"], ["wname", "description"]]]
    assert document["plugins"] == [
        [0, [0, 1, 2], ["a", "b", "c"], ["a", "b", "c"], ["a", "b", "c"],
         ["The a widget.", "The b widget.", "The c widget."]],
    ]  # fmt: skip
    assert oct((three / CACHE).stat().st_mode & 0o777) == oct(0o644)


def test_touching_a_module_rescans_that_module_only(sandbox, three):
    st = os.stat(three / "b.py")
    os.utime(three / "b.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    result = sandbox.describe()
    assert result["imported"] == ["tapster.plugins.b"]
    assert {p["name"]: p["from_cache"] for p in result["plugins"]} == {
        "a": True,
        "b": False,
        "c": True,
    }
    assert sandbox.describe()["imported"] == []


def test_editing_a_module_shows_its_new_fields(sandbox, three):
    st = os.stat(three / "c.py")
    (three / "c.py").write_text("from testkind import W\nc = W('c', 'Now different.')\n")
    os.utime(three / "c.py", ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime, new size
    result = sandbox.describe()
    assert result["plugins"][2]["fields"]["description"] == "Now different."
    assert result["imported"] == ["tapster.plugins.c"]


def test_adding_a_module_scans_only_the_new_one(sandbox, three):
    sandbox.module(three, "d", widget_module("d"))
    result = sandbox.describe()
    assert sandbox.names(result) == ["a", "b", "c", "d"]
    assert result["imported"] == ["tapster.plugins.d"]
    assert sandbox.describe()["imported"] == []


def test_removing_a_module_forgets_it_without_importing_the_others(sandbox, three):
    (three / "a.py").unlink()
    result = sandbox.describe()
    assert sandbox.names(result) == ["b", "c"]
    assert result["imported"] == []
    assert set(json.loads((three / CACHE).read_text())["modules"]) == {"b", "c"}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\xff garbage",
        b'{"format":"tapster-plugin-cache","version":1,"modu',  # truncated
        b'{"format":"someone-else","modules":{}}',  # foreign
        b"[1, 2, 3]",
        b'{"a": NaN}',
    ],
    ids=["empty", "garbage", "truncated", "foreign", "list", "nan"],
)
def test_a_corrupt_cache_is_ignored_and_rebuilt(sandbox, three, content):
    (three / CACHE).write_bytes(content)
    result = sandbox.describe()
    assert sandbox.names(result) == ["a", "b", "c"]
    assert result["imported"] == ["tapster.plugins.a", "tapster.plugins.b", "tapster.plugins.c"]
    assert result["stderr"] == ""
    assert sandbox.describe()["imported"] == []


def _set(path, value):
    """A change to a cache document: set the item at ``path`` (keys and indexes) to ``value``."""

    def change(document):
        *parents, last = path
        target = document
        for key in parents:
            target = target[key]
        target[last] = value

    return change


@pytest.mark.parametrize(
    "corrupt",
    [
        _set(("plugins", 0, 2, 1), 5),  # attribute not a string
        _set(("plugins", 0, 5, 2), ["not", "a", "string"]),
        _set(("plugins", 0), "nonsense"),
        _set(("plugins", 0, 0), 7),  # no such schema
        _set(("plugins", 0, 0), -1),
        lambda document: document["plugins"][0].append(["one", "column", "too many"]),
        lambda document: document["plugins"][0][4].pop(),  # a column too short
        _set(("plugins", 0, 1, 2), 5),  # no such module
        _set(("plugins", 0, 1), [0, 2, 1]),  # out of module order
        _set(("plugins", 0, 1, 1), True),  # a boolean is no index
        lambda document: document["plugins"].append(document["plugins"][0]),  # order again
        _set(("plugins", 0, 1), []),  # an empty run
        _set(("modules", 1), 3),
        lambda document: document["stamps"].pop(),
        _set(("errors",), [[7, "boom", None]]),  # no such module
        _set(("errors",), "none"),
        _set(("schemas",), [[["tests.plugin.Widget"], ["wname", 5]]]),
    ],
)
def test_a_well_formed_cache_with_bad_records_is_not_trusted(sandbox, three, corrupt):
    document = json.loads((three / CACHE).read_text())
    corrupt(document)
    (three / CACHE).write_text(json.dumps(document))
    result = sandbox.describe()
    assert sandbox.names(result) == ["a", "b", "c"]
    assert result["imported"] == ["tapster.plugins.a", "tapster.plugins.b", "tapster.plugins.c"]
    assert sandbox.describe()["imported"] == []  # rewritten, and trusted again


def test_a_cache_from_another_tapster_version_is_rebuilt(sandbox, three):
    document = json.loads((three / CACHE).read_text())
    document["tapster"] = "0.0.0-other"
    (three / CACHE).write_text(json.dumps(document))
    assert len(sandbox.describe()["imported"]) == 3


def test_rebuild_caches_imports_everything_and_rewrites(sandbox, three):
    result = sandbox.run("rebuild")
    assert str(three / CACHE) in result["written"]
    # Every module is imported afresh (tapster's built-in plugins too).
    assert {"tapster.plugins.a", "tapster.plugins.b", "tapster.plugins.c"} <= set(
        result["imported"]
    )
    assert sandbox.describe()["imported"] == []


def test_concurrent_first_runs_agree_and_leave_a_valid_cache(sandbox):
    folder = sandbox.folder("proj")
    for i in range(60):
        sandbox.module(folder, f"m{i:02d}", widget_module(f"w{i:02d}"))
    procs = [
        subprocess.Popen(
            sandbox.command("describe", "tests.plugin.Widget"),
            env=sandbox.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append(
            sandbox.parse(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        )
    expected = [f"w{i:02d}" for i in range(60)]
    for result in results:
        assert sandbox.names(result) == expected
        assert result["stderr"] == ""
    document = json.loads((folder / CACHE).read_text())
    assert len(document["modules"]) == 60
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    warm = sandbox.describe()
    assert warm["imported"] == []
    assert sandbox.names(warm) == expected


def test_a_whole_second_mtime_that_is_too_recent_is_not_cached(sandbox, three):
    """On coarse-timestamp filesystems an edit in the same second could hide: don't cache."""
    import time

    now = int(time.time())
    os.utime(three / "a.py", ns=(now * 10**9, now * 10**9))  # whole second, just now
    first = sandbox.describe()
    assert "tapster.plugins.a" in first["imported"]
    assert "a" not in json.loads((three / CACHE).read_text())["modules"]
    second = sandbox.describe()
    if time.time() - now < 1.5:  # still too recent: imported again, the others from the cache
        assert second["imported"] == ["tapster.plugins.a"]
    older = (now - 10) * 10**9
    os.utime(three / "a.py", ns=(older, older))
    sandbox.describe()
    assert sandbox.describe()["imported"] == []
