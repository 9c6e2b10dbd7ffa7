"""Case 3: plugin discovery with N = 0, 100 and 1000 generated service-maker plugins.

Each side gets a drop-in folder of N generated modules, each defining one service maker
(``gen0000`` ...), and runs ``--help``, which lists them all:

- ``warm``: the plugin caches are up to date (the warm-up run wrote them);
- ``no cache``: before each run the N-plugin folder's cache is deleted (tapster's
  ``.tapster-plugin-cache.json``, Twisted's ``dropin.cache``), so every module is imported and the
  cache written again. Each side's built-in plugins keep their caches, and so does tapster's
  entry point cache (in a scratch ``XDG_CACHE_HOME``).

tapster runs with the folder as its current directory (its default ``--app-dir``); twistd with
``PYTHONPATH`` set to it (and the same current directory). ``python -c pass`` on tapster's
interpreter is measured in the same run, as the yardstick for issue 4's targets.

The generated modules have the same shape on both sides: module-level imports of what the
listing needs (the service-maker kind, the options base class, and on Twisted's side
``IPlugin`` and ``implementer``), an options class with one parameter, a maker class and
its instance; the service class is imported inside ``make_service`` / ``makeService``, where
it is used, as a plugin module should do. On Twisted's side that changes nothing (its kind,
``IServiceMaker``, lives in the module that defines ``Service``); on tapster's it keeps
``asyncio`` out of the scan, since ``tapster.service.ServiceMaker`` is importable without
the services themselves. One more comparison measures the other shape at N=1000 without a
cache (``Service`` imported at module level on both sides: ``bench/_plugins.py``'s modules).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from bench import (
    CPU_MS,
    WALL_MS,
    Case,
    CommandError,
    Comparison,
    Context,
    Metric,
    Unavailable,
    clear_plugin_caches,
    run_timed,
    tapster_maker_source,
    tapster_plugin_dir,
    twisted_maker_source,
    twisted_plugin_dir,
)

OVER_FLOOR = Metric("cpu_over_floor", "x", label="CPU time over python -c pass run next to it")
"""Each warm run's CPU time over that of a bare ``python -c pass`` run right after it (same
interpreter): issue 4's "at most 2 times a bare python" target, measured side by side so that
the load of a shared machine hits both alike (the floor row is measured minutes earlier)."""

SIZES = (0, 100, 1000)
QUICK_SIZES = (0, 100)


def _names(n: int) -> list[str]:
    return [f"gen{i:04d}" for i in range(n)]


def tapster_source(tapname: str, description: str = "A generated plugin.") -> str:
    """A tapster plugin module: one service maker, ``Service`` imported where it is used."""
    return (
        "from tapster.service import ServiceMaker\n"
        "from tapster.usage import Options\n\n\n"
        "class _Options(Options):\n"
        '    parameters = [("port", "p", 0, "Port.", int)]\n\n\n'
        "class _Maker(ServiceMaker):\n"
        f"    tapname = {tapname!r}\n"
        f"    description = {description!r}\n"
        "    options = _Options\n\n"
        "    def make_service(self, options):\n"
        "        from tapster.service import Service\n\n"
        "        return Service()\n\n\n"
        "maker = _Maker()\n"
    )


def twisted_source(tapname: str, description: str = "A generated plugin.") -> str:
    """The Twisted counterpart of :func:`tapster_source`, line for line."""
    return (
        "from twisted.application.service import IServiceMaker\n"
        "from twisted.plugin import IPlugin\n"
        "from twisted.python import usage\n"
        "from zope.interface import implementer\n\n\n"
        "class Options(usage.Options):\n"
        '    optParameters = [["port", "p", 0, "Port.", int]]\n\n\n'
        "@implementer(IServiceMaker, IPlugin)\n"
        "class Maker:\n"
        f"    tapname = {tapname!r}\n"
        f"    description = {description!r}\n"
        "    options = Options\n\n"
        "    def makeService(self, options):\n"
        "        from twisted.application.service import Service\n\n"
        "        return Service()\n\n\n"
        "maker = Maker()\n"
    )


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Yield the floor, then warm and no-cache ``--help`` for each N."""
    metrics = (WALL_MS, CPU_MS)
    xdg = ctx.tmpdir / "xdg-cache"
    xdg.mkdir(exist_ok=True)
    tapster_env = ctx.env({"XDG_CACHE_HOME": str(xdg)})

    def floor() -> dict[str, float]:
        argv = [str(ctx.tapster_python), "-c", "pass"]
        return dict(run_timed(argv, env=tapster_env, cwd=ctx.tmpdir, peak_rss=False).sample)

    yield Comparison(
        "python -c pass",
        metrics,
        tapster=floor,
        twistd=floor,
        note="the yardstick: tapster's interpreter on both sides",
    )

    def over_floor(sample: dict[str, float]) -> dict[str, float]:
        base = floor()
        sample["floor_cpu_ms"] = base[CPU_MS.key]
        sample[OVER_FLOOR.key] = sample[CPU_MS.key] / base[CPU_MS.key]
        return sample

    def tapster(root: Path, last: str | None, cold: bool = False) -> dict[str, float]:
        if cold:
            clear_plugin_caches(root)
        argv = [ctx.tapster_bin("tapster"), "--help"]
        try:
            run = run_timed(argv, env=tapster_env, cwd=root, expect=last, peak_rss=False)
        except CommandError as exc:
            raise Unavailable(f"`tapster --help` failed here: {exc}") from exc
        sample = {**run.sample, "output_lines": float(len(run.stdout.splitlines()))}
        return sample if cold else over_floor(sample)

    def twistd(
        root: Path, last: str | None, env: dict[str, str], cold: bool = False
    ) -> dict[str, float]:
        if cold:
            clear_plugin_caches(root)
        argv = [ctx.twisted_bin("twistd"), "--help"]
        run = run_timed(argv, env=env, cwd=root, expect=last or "web", peak_rss=False)
        sample = {**run.sample, "output_lines": float(len(run.stdout.splitlines()))}
        return sample if cold else over_floor(sample)

    for n in QUICK_SIZES if ctx.quick else SIZES:
        names = _names(n)
        troot = ctx.tmpdir / f"tapster-{n}"
        tapster_plugin_dir(troot, {name: tapster_source(name) for name in names})
        (troot / "tapster" / "plugins").mkdir(parents=True, exist_ok=True)
        wroot = ctx.tmpdir / f"twisted-{n}"
        twisted_env = ctx.env(
            twisted_plugin_dir(wroot, {name: twisted_source(name) for name in names})
        )
        last = names[-1] if names else None

        yield Comparison(
            f"N={n} --help, warm cache",
            (*metrics, OVER_FLOOR),
            tapster=partial(tapster, troot, last),
            twistd=partial(twistd, wroot, last, twisted_env),
            note=f"{n} generated plugins, caches warm",
        )
        yield Comparison(
            f"N={n} --help, no cache",
            metrics,
            tapster=partial(tapster, troot, last, cold=True),
            twistd=partial(twistd, wroot, last, twisted_env, cold=True),
            runs=5 if n >= 1000 else None,
            note=f"{n} generated plugins, the folder's cache deleted before each run",
        )

    if not ctx.quick:
        # The other shape: Service imported at module level (bench/_plugins.py's modules).
        n = 1000
        names = _names(n)
        troot = ctx.tmpdir / f"tapster-{n}-eager"
        tapster_plugin_dir(troot, {name: tapster_maker_source(name) for name in names})
        wroot = ctx.tmpdir / f"twisted-{n}-eager"
        twisted_env = ctx.env(
            twisted_plugin_dir(wroot, {name: twisted_maker_source(name) for name in names})
        )
        yield Comparison(
            f"N={n} --help, no cache, Service imported at module level",
            metrics,
            tapster=partial(tapster, troot, names[-1], cold=True),
            twistd=partial(twistd, wroot, names[-1], twisted_env, cold=True),
            runs=5,
            note="the same plugins importing Service at module level (tapster: asyncio too)",
        )


CASE = Case(
    name="discovery",
    number=3,
    issue=4,
    title="Plugin discovery, N = 0/100/1000, warm and cold cache",
    comparisons=comparisons,
    runs=10,
)
