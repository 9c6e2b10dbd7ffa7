"""Discovery from drop-in folders: what is found, in what order, and what shadows what."""

from __future__ import annotations

import subprocess
import sys

import pytest

WIDGETS = """
from testkind import W, Foreign
first = W("first", "The first widget.")
second = W("second", "The second widget.")
alias = first  # the same object again: listed once
registered = Foreign("registered")
not_a_plugin = object()
"""


def test_dropin_plugins_are_described_with_their_fields(sandbox):
    folder = sandbox.folder("proj")
    path = sandbox.module(folder, "widgets", WIDGETS)
    result = sandbox.describe()
    assert sandbox.names(result) == ["first", "second", "registered"]
    first = result["plugins"][0]
    assert first["fields"] == {"wname": "first", "description": "The first widget."}
    assert first["kinds"] == ["tests.plugin.Widget"]
    assert first["module"] == "tapster.plugins.widgets"
    assert first["attribute"] == "first"
    assert first["origin"] == str(path)
    assert first["from_cache"] is False


def test_describe_accepts_the_kind_class_and_get_plugins_returns_objects(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "widgets", WIDGETS)
    result = sandbox.run("get", "Widget")
    # get_plugins twice in one process: the same objects, each once per call.
    assert result["objects"] == ["first", "second", "registered"] * 2


def test_an_object_of_two_kinds_is_listed_under_each(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "both", "from testkind import Both\nthing = Both('two')\n")
    widgets = sandbox.describe("tests.plugin.Widget")
    gadgets = sandbox.describe("tests.plugin.Gadget")
    assert sandbox.names(widgets) == ["two"]
    assert sandbox.names(gadgets) == ["g-two"]
    assert sorted(gadgets["plugins"][0]["kinds"]) == ["tests.plugin.Gadget", "tests.plugin.Widget"]


def test_order_is_folder_then_module_name_then_definition(sandbox):
    one = sandbox.folder("one")
    two = sandbox.folder("two")
    sandbox.module(two, "aaa", "from testkind import W\nz = W('two-aaa-z')\n")
    sandbox.module(one, "zzz", "from testkind import W\nb = W('one-zzz-b')\na = W('one-zzz-a')\n")
    sandbox.module(one, "mmm", "from testkind import W\nx = W('one-mmm-x')\n")
    expected = ["one-mmm-x", "one-zzz-b", "one-zzz-a", "two-aaa-z"]
    assert sandbox.names(sandbox.describe()) == expected
    # The same order again from the cache.
    warm = sandbox.describe()
    assert sandbox.names(warm) == expected
    assert all(p["from_cache"] for p in warm["plugins"])


def test_first_folder_on_sys_path_wins_and_the_other_is_reported(sandbox):
    one = sandbox.folder("one")
    two = sandbox.folder("two")
    sandbox.module(one, "dup", "from testkind import W\nw = W('from-one')\n")
    hidden = sandbox.module(two, "dup", "raise RuntimeError('the shadowed module ran')\n")
    result = sandbox.describe()
    assert sandbox.names(result) == ["from-one"]
    assert "shadowed module ran" not in result["stderr"]
    problems = sandbox.run("problems")["problems"]
    shadowed = [p for p in problems if p[0] == "tapster.plugins.dup"]
    assert len(shadowed) == 1
    _module, broken, message = shadowed[0]
    assert broken is False
    assert str(hidden) in message and "shadowed by" in message
    assert str(one / "dup.py") in message


def test_only_valid_py_modules_directly_in_the_folder_count(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "good", "from testkind import W\nw = W('good')\n")
    (folder / "not-a-module.py").write_text("raise RuntimeError('ran')\n")
    (folder / "notes.txt").write_text("from testkind import W\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "deep.py").write_text("raise RuntimeError('ran')\n")
    result = sandbox.describe()
    assert sandbox.names(result) == ["good"]
    assert "ran" not in result["stderr"]


def test_a_folder_with_an_init_file_is_another_tapster_and_is_skipped(sandbox):
    folder = sandbox.folder("other")
    (folder / "__init__.py").write_text("")
    sandbox.module(folder, "extra", "from testkind import W\nw = W('extra')\n")
    assert sandbox.names(sandbox.describe()) == []


def test_plugins_package_path_lists_every_folder_in_sys_path_order(sandbox):
    one = sandbox.folder("one")
    two = sandbox.folder("two")
    code = "import tapster.plugins as p; print('\\n'.join(p.__path__))"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=sandbox.env(), capture_output=True, text=True, check=True
    )
    path = proc.stdout.split()
    assert path[0].endswith("src/tapster/plugins")
    assert path[1:] == [str(one), str(two)]


def test_describe_rejects_a_class_that_is_not_a_kind():
    from tapster.plugin import describe_plugins

    with pytest.raises(TypeError, match="not a plugin kind"):
        describe_plugins(int)


def test_a_kind_must_name_itself_with_a_string():
    from tapster.plugin import PluginKind

    with pytest.raises(TypeError, match="plugin_kind"):

        class Bad(PluginKind):
            plugin_kind = 3  # type: ignore[assignment]


def test_a_folder_reached_twice_counts_once(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "one", "from testkind import W\nw = W('one')\n")
    alias = sandbox.root / "alias"
    alias.symlink_to(sandbox.root / "proj")
    sandbox.path.append(alias)
    result = sandbox.describe()
    assert sandbox.names(result) == ["one"]
    assert not [p for p in sandbox.run("problems")["problems"] if "tapster.plugins.one" in p[0]]


def test_a_kind_defined_again_still_finds_plugins_of_either_class(sandbox):
    """As after importlib.reload of the kind's module: two classes, one kind id."""
    folder = sandbox.folder("proj")
    sandbox.module(folder, "old", "from testkind import W\nw = W('of-the-first-class')\n")
    sandbox.module(
        folder,
        "reloaded",
        """
        import importlib, testkind
        testkind = importlib.reload(testkind)
        w = testkind.W('of-the-second-class')
        """,
    )
    assert sandbox.names(sandbox.describe()) == ["of-the-first-class", "of-the-second-class"]
