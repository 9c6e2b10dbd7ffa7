"""Case 1, the floor: a bare interpreter, then importing each package.

``python -c pass`` runs on each side's own venv interpreter (both made from the same CPython), so
its ratio shows how alike the two sides are; ``import tapster`` against ``import twisted`` is
the least either command can cost before doing anything.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench import CPU_MS, PEAK_RSS_MB, WALL_MS, Case, Comparison, Context, run_timed


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Yield the two floor comparisons; each run is one short interpreter process."""
    env = ctx.env()
    cwd = ctx.tmpdir
    metrics = (WALL_MS, CPU_MS, PEAK_RSS_MB)

    def python(side: str, code: str) -> dict[str, float]:
        interpreter = ctx.tapster_python if side == "tapster" else ctx.twisted_python
        return run_timed([str(interpreter), "-c", code], env=env, cwd=cwd).sample

    yield Comparison(
        "python -c pass",
        metrics,
        tapster=lambda: python("tapster", "pass"),
        twistd=lambda: python("twistd", "pass"),
        note="each side's venv",
    )
    yield Comparison(
        "import tapster / import twisted",
        metrics,
        tapster=lambda: python("tapster", "import tapster"),
        twistd=lambda: python("twistd", "import twisted"),
    )


CASE = Case(
    name="floor",
    number=1,
    issue=3,
    title="Interpreter floor: python -c pass, import tapster vs import twisted",
    comparisons=comparisons,
    runs=20,
)
