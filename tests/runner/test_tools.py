"""The runner's tool options: --plugins, --rebuild-plugin-cache, --completion."""

from __future__ import annotations

from pathlib import Path

from support import run_tapster


def test_plugins_listing_ok_then_broken(project: Path) -> None:
    result = run_tapster(["--plugins"], cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tapster.service.ServiceMaker:" in result.stdout
    assert "myproject" in result.stdout
    broken = project / "tapster" / "plugins" / "broken_plugin.py"
    broken.write_text("import no_such_module_anywhere\n")
    result = run_tapster(["--plugins"], cwd=project)
    assert result.returncode == 1
    assert "broken" in result.stdout and "no_such_module_anywhere" in result.stdout
    # A broken neighbour does not stop the others from running or being listed.
    assert "myproject" in run_tapster(["--help"], cwd=project).stdout


def test_rebuild_plugin_cache_writes_the_project_cache(project: Path) -> None:
    result = run_tapster(["--rebuild-plugin-cache"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert str(project / "tapster" / "plugins") in result.stdout


def test_completion_scripts_cover_runner_and_plugin_options(project: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        result = run_tapster(["--completion", shell], cwd=project)
        assert result.returncode == 0, (shell, result.stderr)
        for word in ("daemon", "pidfile", "myproject", "port"):
            assert word in result.stdout, (shell, word)
    result = run_tapster(["--completion", "tcsh"], cwd=project)
    assert result.returncode == 2


def test_a_plugin_that_breaks_after_caching_is_one_line_status_1(project: Path) -> None:
    (project / "myproject" / "extra.py").write_text("VALUE = 1\n")
    (project / "tapster" / "plugins" / "fragile_plugin.py").write_text(
        "from myproject.extra import VALUE\n"
        "from tapster.service import ServiceMaker\n"
        "from tapster.usage import Options\n"
        "class Fragile(ServiceMaker):\n"
        "    tapname = 'fragile'\n"
        "    description = 'Breaks when its dependency goes.'\n"
        "    options = Options\n"
        "    def make_service(self, options):\n"
        "        raise NotImplementedError\n"
        "fragile = Fragile()\n"
    )
    assert "fragile" in run_tapster(["--help"], cwd=project).stdout  # cached now
    (project / "myproject" / "extra.py").unlink()
    result = run_tapster(["fragile"], cwd=project)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("tapster: the plugin for 'fragile'")
    assert "myproject.extra" in result.stderr
