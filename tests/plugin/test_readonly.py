"""A read-only installation: the cache goes to the user's cache directory, silently."""

from __future__ import annotations

import json
import os
import shutil

import pytest

CACHE = ".tapster-plugin-cache.json"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as nobody")


def nobody_cache(sandbox):
    xdg = sandbox.root / "xdg-nobody"
    xdg.mkdir()
    shutil.chown(xdg, "nobody", "nogroup")
    return xdg


def user_cached_folders(xdg):
    """folder -> cached module names, from the user cache directory."""
    found = {}
    for path in (xdg / "tapster").glob("folder-*.json"):
        document = json.loads(path.read_text())
        found[document["folder"]] = document["modules"]
    return found


def test_unwritable_folder_caches_in_the_user_cache_dir(sandbox):
    folder = sandbox.folder("system")
    sandbox.module(folder, "a", "from testkind import W\na = W('a')\n")
    sandbox.module(folder, "b", "from testkind import W\nb = W('b')\n")
    xdg = nobody_cache(sandbox)

    cold = sandbox.run("describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME=str(xdg))
    assert sandbox.names(cold) == ["a", "b"]
    assert cold["stderr"] == ""
    assert not (folder / CACHE).exists()
    assert set(user_cached_folders(xdg)[str(folder)]) == {"a", "b"}
    assert (xdg / "tapster").stat().st_mode & 0o777 == 0o700

    warm = sandbox.run("describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME=str(xdg))
    assert sandbox.names(warm) == ["a", "b"]
    assert warm["imported"] == []
    assert all(p["from_cache"] for p in warm["plugins"])


def test_packager_cache_serves_every_user_and_changes_go_to_the_user_cache(sandbox):
    folder = sandbox.folder("system")
    sandbox.module(folder, "a", "from testkind import W\na = W('a')\n")
    sandbox.module(folder, "b", "from testkind import W\nb = W('b')\n")
    xdg = nobody_cache(sandbox)
    # The packager (root, owning the folder) builds the cache once.
    assert str(folder / CACHE) in sandbox.run("rebuild")["written"]

    as_nobody = sandbox.run(
        "describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME=str(xdg)
    )
    assert as_nobody["imported"] == []
    assert str(folder) not in user_cached_folders(xdg)

    # An upgrade changes one module; nobody rescans just that one, caching it privately.
    sandbox.module(folder, "b", "from testkind import W\nb = W('b', 'upgraded')\n")
    changed = sandbox.run("describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME=str(xdg))
    assert changed["imported"] == ["tapster.plugins.b"]
    assert changed["plugins"][1]["fields"]["description"] == "upgraded"
    assert set(user_cached_folders(xdg)[str(folder)]) == {"a", "b"}
    again = sandbox.run("describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME=str(xdg))
    assert again["imported"] == []
    assert again["plugins"][1]["fields"]["description"] == "upgraded"


def test_no_writable_cache_anywhere_still_works_silently(sandbox):
    folder = sandbox.folder("system")
    sandbox.module(folder, "a", "from testkind import W\na = W('a')\n")
    for _ in range(2):
        result = sandbox.run(
            "describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME="/nonexistent/cache"
        )
        assert sandbox.names(result) == ["a"]
        assert result["stderr"] == ""
        # Nothing can be written: not even json (and its re) is imported to try.
        assert "json" not in result["heavy"]


def test_packager_rebuild_serves_entry_points_to_users_without_a_cache_dir(sandbox):
    sandbox.own_tapster()  # the copy it reads lives in tapster's own folder: keep it ours
    site = sandbox.root / "site"
    info = site / "shared_dist-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shared-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tapster.plugins]\nshared = shared_pkg:thing\n")
    (site / "shared_pkg.py").write_text(
        "with open(__file__ + '.count', 'a') as f:\n"
        "    f.write('imported\\n')\n"
        "from testkind import W\n"
        "thing = W('shared-thing')\n"
    )
    sandbox.path.append(site)
    # The packager (root, same interpreter and sys.path as the users) rebuilds every cache.
    sandbox.run("rebuild", python_of="nobody")
    counter = site / "shared_pkg.py.count"
    assert counter.read_text() == "imported\n"

    result = sandbox.run(
        "describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME="/nonexistent/cache"
    )
    assert sandbox.names(result) == ["shared-thing"]
    assert result["plugins"][0]["origin"] == "shared-dist 1.0 entry point shared"
    assert result["plugins"][0]["from_cache"] is True
    assert counter.read_text() == "imported\n"
    assert "shared" not in result["stderr"]


def test_a_stale_packager_cache_is_not_rewritten_on_every_run(sandbox):
    folder = sandbox.folder("system")
    sandbox.module(folder, "a", "from testkind import W\na = W('a')\n")
    sandbox.module(folder, "b", "from testkind import W\nb = W('b')\n")
    xdg = nobody_cache(sandbox)
    sandbox.run("rebuild")
    (folder / "b.py").unlink()  # uninstalled since the packager's rebuild

    def user_cache_state():
        return {p.name: p.stat().st_mtime_ns for p in (xdg / "tapster").glob("folder-*.json")}

    first = sandbox.run("describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME=str(xdg))
    assert sandbox.names(first) == ["a"]
    assert first["imported"] == []
    state = user_cache_state()
    second = sandbox.run("describe", "tests.plugin.Widget", user="nobody", XDG_CACHE_HOME=str(xdg))
    assert sandbox.names(second) == ["a"]
    assert user_cache_state() == state
