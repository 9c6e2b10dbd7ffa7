"""Plugins named by entry points in the group ``tapster.plugins``."""

from __future__ import annotations

import os

import pytest


def make_dist(site, dist, version, entry_points, package, modules):
    """Install by hand: a package and a ``.dist-info`` with ``entry_points.txt``."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points)
    (info / "entry_points.txt").write_text(f"[tapster.plugins]\n{lines}")
    pkg = site / package
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for name, body in modules.items():
        (pkg / f"{name}.py").write_text(body)
    return info


@pytest.fixture
def site(sandbox):
    site = sandbox.root / "site"
    site.mkdir()
    sandbox.path.append(site)
    make_dist(
        site,
        "demo-dist",
        "1.0",
        [
            ("widget", "demo_pkg.mod:thing"),
            ("whole", "demo_pkg.other"),
            ("nested", "demo_pkg.mod:holder.inner"),
        ],
        "demo_pkg",
        {
            "mod": (
                "from testkind import W\n"
                "thing = W('ep-thing', 'Named by an entry point.')\n"
                "class holder:\n"
                "    inner = W('ep-inner')\n"
            ),
            "other": "from testkind import W\nx = W('ep-x')\ny = W('ep-y')\n",
        },
    )
    make_dist(
        site,
        "another-dist",
        "2.0",
        [("one", "plugmods.one:p")],
        "plugmods",
        {"one": "from testkind import W\np = W('another-one')\n"},
    )
    return site


# By distribution name, then entry point name (nested, whole, widget).
EXPECTED = ["another-one", "ep-inner", "ep-x", "ep-y", "ep-thing"]


def test_entry_points_are_found_after_dropins_in_order(sandbox, site):
    folder = sandbox.folder("proj")
    sandbox.module(folder, "local", "from testkind import W\nw = W('local')\n")
    result = sandbox.describe()
    assert sandbox.names(result) == ["local", *EXPECTED]
    thing = result["plugins"][5]
    assert thing["origin"] == "demo-dist 1.0 entry point widget"
    assert thing["module"] == "demo_pkg.mod"
    assert thing["attribute"] == "thing"
    assert thing["fields"]["description"] == "Named by an entry point."
    whole = result["plugins"][3]
    assert (whole["module"], whole["attribute"]) == ("demo_pkg.other", "x")


def test_entry_point_plugins_load(sandbox, site):
    assert sandbox.run("get", "Widget")["objects"] == EXPECTED * 2


def test_warm_entry_points_import_nothing_not_even_importlib_metadata(sandbox, site):
    sandbox.describe()
    warm = sandbox.describe()
    assert sandbox.names(warm) == EXPECTED
    assert all(p["from_cache"] for p in warm["plugins"])
    assert warm["imported"] == []
    if not warm["builtins_rescanned"]:  # see conftest: others may be editing tapster's own
        assert warm["heavy"] == []


def test_a_new_distribution_version_rescans_only_that_distribution(sandbox, site):
    sandbox.describe()
    old = site / "demo_dist-1.0.dist-info"
    new = site / "demo_dist-1.1.dist-info"
    old.rename(new)
    (new / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-dist\nVersion: 1.1\n")
    result = sandbox.describe()
    assert sandbox.names(result) == EXPECTED
    assert result["plugins"][1]["origin"] == "demo-dist 1.1 entry point nested"
    assert "demo_pkg.mod" in result["imported"]
    assert not [m for m in result["imported"] if m.startswith("plugmods")]
    assert result["plugins"][0]["from_cache"] is True


def test_editing_an_entry_point_module_rescans_that_entry(sandbox, site):
    sandbox.describe()
    path = site / "plugmods" / "one.py"
    st = os.stat(path)
    path.write_text("from testkind import W\np = W('another-one', 'edited')\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    result = sandbox.describe()
    assert result["plugins"][0]["fields"]["description"] == "edited"
    assert result["imported"] == ["plugmods", "plugmods.one"]


def test_broken_entry_points_are_reported(sandbox, site):
    make_dist(
        site,
        "broken-dist",
        "0.1",
        [("gone", "demo_pkg.missing:x"), ("nothing", "demo_pkg.mod:holder")],
        "demo_pkg",
        {},
    )
    result = sandbox.describe()
    assert sandbox.names(result) == EXPECTED
    lines = result["stderr"].splitlines()
    assert len(lines) == 2
    assert "broken-dist 0.1 entry point gone" in lines[0]
    assert "ModuleNotFoundError" in lines[0]
    assert "demo_pkg.mod:holder is not a plugin of any known kind" in lines[1]
    report = sandbox.run("report")
    assert report["status"] == 1


def test_entry_points_are_read_without_importlib_metadata(sandbox, site):
    cold = sandbox.describe()
    assert sandbox.names(cold) == EXPECTED
    assert "importlib.metadata" not in cold["heavy"]
    # Without any usable cache directory too: still right, still no importlib.metadata.
    homeless = sandbox.describe(XDG_CACHE_HOME="/nonexistent/cache")
    assert sandbox.names(homeless) == EXPECTED
    assert "importlib.metadata" not in homeless["heavy"]


def test_the_first_copy_of_a_distribution_on_sys_path_wins(sandbox, site):
    later = sandbox.root / "later-site"
    later.mkdir()
    sandbox.path.append(later)
    make_dist(
        later,
        "Demo.Dist",
        "0.9",
        [("old", "demo_pkg.mod:thing")],
        "demo_pkg_old",
        {},
    )
    make_dist(
        later,
        "extra-dist",
        "3.0",
        [("extra", "plugmods.one:p [speedups]")],
        "plugmods_unused",
        {},
    )
    result = sandbox.describe()
    origins = [p["origin"] for p in result["plugins"]]
    assert not [o for o in origins if "0.9" in o]
    assert origins[-1] == "extra-dist 3.0 entry point extra"


def test_fixing_a_broken_entry_point_module_is_noticed(sandbox, site):
    """An editable install: the module is fixed in place, no version changes."""
    path = site / "demo_pkg" / "other.py"
    good = path.read_text()
    path.write_text("raise RuntimeError('not yet')\n")
    broken = sandbox.describe()
    assert "ep-x" not in sandbox.names(broken)
    assert "RuntimeError: not yet" in broken["stderr"]
    st = os.stat(path)
    path.write_text(good)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    fixed = sandbox.describe()
    assert sandbox.names(fixed) == EXPECTED
    assert fixed["stderr"] == ""
