"""Broken plugins stay isolated, are recorded once, and are reported in one line."""

from __future__ import annotations

import json
import os
import sys

BROKEN = """
with open({counter!r}, "a") as f:
    f.write("imported\\n")
{statement}
"""


def make_broken(sandbox, folder, name, statement):
    counter = sandbox.root / f"{name}.count"
    sandbox.module(folder, name, BROKEN.format(counter=str(counter), statement=statement))
    return counter


def test_broken_modules_do_not_hide_the_others(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "aaa", "from testkind import W\nw = W('before')\n")
    make_broken(sandbox, folder, "boom", "1 / 0")
    make_broken(sandbox, folder, "quits", "raise SystemExit(3)")
    sandbox.module(folder, "zzz", "from testkind import W\nw = W('after')\n")
    result = sandbox.describe()
    assert sandbox.names(result) == ["before", "after"]


def test_a_broken_module_warns_once_and_is_not_reimported_until_changed(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "good", "from testkind import W\nw = W('good')\n")
    counter = make_broken(sandbox, folder, "boom", "1 / 0")

    first = sandbox.run("describe", "tests.plugin.Widget", "3")
    lines = first["stderr"].splitlines()
    assert len(lines) == 1, first["stderr"]
    assert "tapster.plugins.boom" in lines[0]
    assert str(folder / "boom.py") in lines[0]
    assert "ZeroDivisionError: division by zero (line 4)" in lines[0]
    assert counter.read_text() == "imported\n"

    # Listed again from the cache: warned again, but not imported again.
    second = sandbox.run("describe", "tests.plugin.Widget", "3")
    assert second["stderr"] == first["stderr"]
    assert second["imported"] == []
    assert counter.read_text() == "imported\n"

    # get_plugins in the same process as describe: still a single warning.
    got = sandbox.run("get", "Widget")
    assert got["objects"] == ["good", "good"]
    assert len(got["stderr"].splitlines()) == 1

    # Once the module changes it is tried again.
    st = os.stat(folder / "boom.py")
    os.utime(folder / "boom.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    sandbox.describe()
    assert counter.read_text() == "imported\n" * 2


def test_system_exit_in_a_plugin_is_caught_and_reported(sandbox):
    folder = sandbox.folder("proj")
    make_broken(sandbox, folder, "quits", "raise SystemExit('no way')")
    problems = sandbox.run("problems")["problems"]
    mine = [p for p in problems if p[0] == "tapster.plugins.quits"]
    assert len(mine) == 1
    _, broken, message = mine[0]
    assert broken is True
    assert message.endswith("is broken: SystemExit: no way (line 4)")


def test_a_syntax_error_is_one_line(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "typo", "def broken(:\n    pass\n")
    problems = sandbox.run("problems")["problems"]
    (message,) = [p[2] for p in problems if p[0] == "tapster.plugins.typo"]
    assert "SyntaxError" in message
    assert "\n" not in message


def test_report_lists_plugins_and_problems_and_fails_when_broken(sandbox):
    one = sandbox.folder("one")
    two = sandbox.folder("two")
    sandbox.module(one, "good", "from testkind import W\nw = W('good', 'A good widget.')\n")
    sandbox.module(two, "good", "from testkind import W\nw = W('hidden')\n")
    ok = sandbox.run("report")
    assert ok["status"] == 0
    text = ok["text"]
    assert "tests.plugin.Widget:" in text
    assert "good" in text and "A good widget." in text
    assert "tapster.plugins.good:w" in text and str(one / "good.py") in text
    assert "shadowed:" in text and str(two / "good.py") in text
    assert "all well" in text
    assert "(scanned)" in text or "(cached)" in text
    assert "(cached)" in sandbox.run("report")["text"]

    make_broken(sandbox, one, "boom", "raise ImportError('needs foo')")
    bad = sandbox.run("report")
    assert bad["status"] == 1
    assert "broken: plugin module tapster.plugins.boom" in bad["text"]
    assert "ImportError: needs foo" in bad["text"]
    # The report lists the problem itself: no warning on stderr besides.
    assert bad["stderr"] == ""


def test_an_import_error_counts_only_in_the_environment_that_met_it(sandbox):
    """One folder, two environments: a dependency missing in one is not broken in the other."""
    folder = sandbox.folder("proj")
    counter = make_broken(sandbox, folder, "needy", "import sys\nassert sys.prefix == '/elsewhere'")
    sandbox.describe()
    sandbox.describe()
    assert counter.read_text() == "imported\n"  # recorded, not retried here
    cache = folder / ".tapster-plugin-cache.json"
    document = json.loads(cache.read_text())
    ((index, error, environment),) = document["errors"]  # [module index, error, environment]
    assert (index, environment) == (0, sys.prefix)
    assert "AssertionError" in error
    document["errors"][0][2] = "/some/other/venv"
    cache.write_text(json.dumps(document))
    sandbox.describe()
    assert counter.read_text() == "imported\n" * 2  # another environment's error: retried


def test_two_plugins_with_one_name_are_reported_but_not_broken(sandbox):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "aaa", "from testkind import W\nw = W('same', 'first')\n")
    sandbox.module(folder, "bbb", "from testkind import W\nw = W('same', 'second')\n")
    result = sandbox.describe()
    assert [p["fields"]["description"] for p in result["plugins"]] == ["first", "second"]
    problems = sandbox.run("problems")["problems"]
    (duplicate,) = [p for p in problems if "same" in p[2]]
    module, broken, message = duplicate
    assert module == "tapster.plugins.bbb" and broken is False
    assert "tapster.plugins.aaa:w" in message and "comes first and wins" in message
    report = sandbox.run("report")
    assert report["status"] == 0
    assert "duplicate: plugin tapster.plugins.bbb:w" in report["text"]
