"""The harness: find the cases, run each comparison interleaved, reduce, report.

Cases are the modules of ``bench.cases`` whose names do not start with ``_``; each exports
``CASE`` (a :class:`bench.Case`). Every comparison runs a warm-up of each side, then alternates
the sides run by run (tapster, twistd, tapster, twistd, ...) so that drift on a shared machine
hits both alike. Results: one JSON document (:func:`write_results`) and a Markdown table
(:func:`markdown`).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import pkgutil
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bench import cases as cases_pkg
from bench._env import (
    RESULTS,
    TWISTED_VENV,
    TWISTED_VERSION,
    Context,
    machine_info,
    stripped_variables,
)
from bench._load import WRK_HOWTO
from bench._model import PLANNED, Case, Comparison, Planned, Sample, Unavailable
from bench._procs import GNU_TIME

SIDES = ("tapster", "twistd")
SCHEMA = 1


def discover_cases() -> tuple[dict[str, Case], dict[str, str]]:
    """Import every case module; return ``{name: Case}`` and ``{module: error}`` for broken ones."""
    found: dict[str, Case] = {}
    broken: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(cases_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{cases_pkg.__name__}.{info.name}")
            case = module.CASE
        except Exception as exc:
            broken[info.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not isinstance(case, Case):
            broken[info.name] = "CASE is not a bench.Case"
            continue
        found[case.name] = case
    return found, broken


def pending(found: Iterable[Case]) -> list[Planned]:
    """The planned cases whose number no landed case claims yet."""
    numbers = {case.number for case in found}
    return [p for p in PLANNED if p.number not in numbers]


def _order(case: Case) -> tuple[int, str]:
    return (case.number if case.number is not None else 1000, case.name)


def listing() -> str:
    """A plain-text list of the cases: landed, planned (with owning issue), broken."""
    found, broken = discover_cases()
    entries: list[tuple[int, str]] = []
    for case in found.values():
        number = f"{case.number}." if case.number is not None else "-"
        extra = "" if case.default else "  [not run by default]"
        owner = f" (issue {case.issue})" if case.issue else ""
        line = f"  {number:>3} {case.name:<12} {case.title}{owner}{extra}"
        entries.append((_order(case)[0], line))
    for plan in pending(found.values()):
        line = (
            f"  {str(plan.number) + '.':>3} {plan.name:<12} {plan.title} "
            f"(planned: issue {plan.issue}, not landed yet)"
        )
        entries.append((plan.number, line))
    lines = ["Cases (python -m bench NAME ...):"]
    lines += [line for _, line in sorted(entries)]
    for name, error in broken.items():
        lines.append(f"  !  {name:<12} broken case module: {error}")
    lines += ["", "Tools:", *(f"  {line}" for line in tool_status())]
    return "\n".join(lines)


def tool_status() -> list[str]:
    """One line per outside tool the cases use: found, or how to get it."""
    twisted = TWISTED_VENV / "bin" / "twistd"
    return [
        f"wrk: {shutil.which('wrk') or 'missing: ' + WRK_HOWTO}",
        "GNU time (peak RSS of short commands): "
        + (GNU_TIME if os.access(GNU_TIME, os.X_OK) else "missing: apt-get install -y time"),
        f"Twisted {TWISTED_VERSION} venv: "
        + (str(TWISTED_VENV) if twisted.is_file() else "not made yet (made on first use)"),
    ]


def select_cases(names: Sequence[str]) -> tuple[list[Case], list[str]]:
    """Resolve names (or numbers) to cases; return the cases and messages about skipped names.

    No names selects every case with ``default`` True. An unknown name raises ``KeyError``.
    """
    found, broken = discover_cases()
    if not names:
        return sorted((c for c in found.values() if c.default), key=_order), []
    by_number = {str(c.number): c for c in found.values() if c.number is not None}
    chosen: list[Case] = []
    skipped: list[str] = []
    for name in names:
        case = found.get(name) or by_number.get(name)
        if case is not None:
            if case not in chosen:
                chosen.append(case)
            continue
        plan = next((p for p in pending(found.values()) if name in (p.name, str(p.number))), None)
        if plan is not None:
            skipped.append(
                f"case {plan.number} ({plan.name}) is planned by issue {plan.issue}; "
                "it has not landed yet"
            )
        elif name in broken:
            skipped.append(f"case module {name} is broken: {broken[name]}")
        else:
            known = ", ".join(sorted(found)) or "none"
            raise KeyError(f"unknown case {name!r}; known cases: {known} (see --list)")
    return chosen, skipped


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and count of one metric's runs."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": float(len(values)),
    }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Side:
    def __init__(self, name: str, run: Callable[[], Sample]) -> None:
        self.name = name
        self.run = run
        self.samples: list[dict[str, float]] = []
        self.status = "ok"
        self.reason = ""
        self.trace = ""

    def call(self, record: bool) -> None:
        if self.status != "ok":
            return
        try:
            sample = {k: float(v) for k, v in self.run().items()}
        except Unavailable as exc:
            self.status, self.reason = "unavailable", _one_line(exc)
        except Exception as exc:
            self.status, self.reason = "error", f"{type(exc).__name__}: {_one_line(exc)}"
            self.trace = traceback.format_exc()
        else:
            if record:
                self.samples.append(sample)


def run_comparison(
    case: Case, cmp: Comparison, ctx: Context, progress: TextIO | None = None
) -> dict[str, Any]:
    """Measure one comparison: warm-up, then interleaved runs; return its result record."""
    if cmp.exact:
        # A count that does not vary (instructions): the comparison's own runs, whatever
        # --runs says, as repeating it would only repeat the same figure.
        runs, warmup = cmp.runs or 1, cmp.warmup or 0
    else:
        runs = ctx.runs or cmp.runs or case.runs
        warmup = (
            ctx.warmup
            if ctx.warmup is not None
            else (cmp.warmup if cmp.warmup is not None else case.warmup)
        )
    sides = [_Side("tapster", cmp.tapster), _Side("twistd", cmp.twistd)]
    for _ in range(warmup):
        for side in sides:
            side.call(record=False)
    live = progress is not None and progress.isatty()
    if progress is not None and not live:
        print(f"bench: {case.name} / {cmp.label}: {runs} runs per side", file=progress)
    for i in range(runs):
        if live and progress is not None:
            print(f"\rbench: {case.name} / {cmp.label}: run {i + 1}/{runs}", end="", file=progress)
            progress.flush()
        for side in sides:
            side.call(record=True)
    if live:
        print(file=progress)
    record: dict[str, Any] = {
        "label": cmp.label,
        "note": cmp.note,
        "runs": runs,
        "warmup": warmup,
        "sides": {},
        "metrics": {},
        "samples": {s.name: s.samples for s in sides},
    }
    for side in sides:
        record["sides"][side.name] = {"status": side.status, "reason": side.reason}
        if side.trace:
            record.setdefault("traces", {})[side.name] = side.trace
        if side.status == "error" and progress is not None:
            print(f"bench: {case.name} / {cmp.label} / {side.name}: {side.reason}", file=progress)
    for metric in cmp.metrics:
        entry: dict[str, Any] = {
            "unit": metric.unit,
            "lower_is_better": metric.lower_is_better,
            "title": metric.title,
        }
        for side in sides:
            values = [s[metric.key] for s in side.samples if metric.key in s]
            entry[side.name] = summarize(values) if values and side.status == "ok" else None
        t, w = entry["tapster"], entry["twistd"]
        entry["ratio"] = t["median"] / w["median"] if t and w and w["median"] else None
        record["metrics"][metric.key] = entry
    return record


def run_case(case: Case, ctx: Context, progress: TextIO | None = None) -> dict[str, Any]:
    """Run every comparison of ``case``; a failure to build comparisons is recorded, not raised."""
    result: dict[str, Any] = {
        "name": case.name,
        "number": case.number,
        "issue": case.issue,
        "title": case.title,
        "comparisons": [],
        "status": "ok",
        "reason": "",
    }
    started = time.perf_counter()
    iterator = iter(case.comparisons(ctx))
    try:
        while True:
            try:
                cmp = next(iterator)
            except StopIteration:
                break
            except Unavailable as exc:
                result["status"], result["reason"] = "unavailable", _one_line(exc)
                break
            except Exception as exc:
                result["status"] = "error"
                result["reason"] = f"{type(exc).__name__}: {_one_line(exc)}"
                break
            result["comparisons"].append(run_comparison(case, cmp, ctx, progress))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        result["elapsed_s"] = round(time.perf_counter() - started, 1)
    return result


def run_cases(
    cases: Sequence[Case],
    ctx: Context,
    *,
    command: str = "",
    progress: TextIO | None = sys.stderr,
) -> dict[str, Any]:
    """Run ``cases`` in order and return the whole results document."""
    started = dt.datetime.now(dt.UTC)
    machine = machine_info()
    results = [run_case(case, ctx, progress) for case in cases]
    environment = ctx.describe()
    environment["stripped_variables"] = stripped_variables()
    environment["twisted_pinned"] = TWISTED_VERSION
    machine["loadavg_end"] = list(os.getloadavg())
    return {
        "schema": SCHEMA,
        "command": command,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "environment": environment,
        "cases": results,
    }


def write_results(results: dict[str, Any], path: Path | None = None) -> Path:
    """Write the results JSON (default ``bench/results/<UTC time>.json`` and ``latest.json``)."""
    if path is None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = results["started"].replace(":", "").replace("+0000", "Z")
        path = RESULTS / f"bench-{stamp}.json"
        (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def fmt(value: float) -> str:
    """A number with about three significant digits, thousands separated."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(stats: dict[str, float] | None, status: dict[str, str], notes: list[str]) -> str:
    if stats is None:
        if status["status"] == "ok":
            return "n/a"
        return f"{status['status']} [{_note(notes, status['reason'])}]"
    return f"{fmt(stats['median'])} ({fmt(stats['min'])}-{fmt(stats['max'])})"


def _note(notes: list[str], text: str) -> int:
    """The footnote number of ``text``, adding it once."""
    if text not in notes:
        notes.append(text)
    return notes.index(text) + 1


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown table (median (min-max) per side, ratio of medians) plus notes."""
    env = results["environment"]
    machine = results["machine"]
    head = [
        f"Command: `{results['command']}`  ",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, Linux {machine['kernel']}; "
        f"Python {env.get('tapster_python_version', '?')}; "
        f"Twisted {env.get('twisted_version') or 'not used'}; "
        f"tapster {env.get('tapster_commit', '?')}; {results['started']}; "
        f"load average {_load(machine)}",
        "",
        "| # | case | comparison | metric | tapster median (min-max) "
        "| twistd median (min-max) | tapster/twistd |",
        "|---|---|---|---|---|---|---|",
    ]
    rows: list[str] = []
    notes: list[str] = []
    for case in results["cases"]:
        number = case["number"] if case["number"] is not None else "-"
        if case["status"] != "ok" and not case["comparisons"]:
            status = f"{case['status']} [{_note(notes, case['reason'])}]"
            rows.append(f"| {number} | {case['name']} | — | — | {status} | | |")
            continue
        for cmp in case["comparisons"]:
            label = cmp["label"] + (f" ({cmp['note']})" if cmp["note"] else "")
            for entry in cmp["metrics"].values():
                t = _cell(entry["tapster"], cmp["sides"]["tapster"], notes)
                w = _cell(entry["twistd"], cmp["sides"]["twistd"], notes)
                ratio = f"**{entry['ratio']:.2f}**" if entry["ratio"] is not None else "—"
                rows.append(
                    f"| {number} | {case['name']} | {label} | {entry['title']} | {t} | {w} "
                    f"| {ratio} |"
                )
        if case["status"] != "ok" and case["comparisons"]:
            status = f"{case['status']} [{_note(notes, case['reason'])}]"
            rows.append(f"| {number} | {case['name']} | (stopped) | — | {status} | | |")
    tail = [""] + [f"[{i}] {note}  " for i, note in enumerate(notes, 1)] if notes else []
    legend = [
        "",
        "↓ lower is better, ↑ higher is better; the ratio is tapster's median over twistd's; "
        f"runs per side: {_runs_summary(results)}, after a warm-up, interleaved.",
    ]
    return "\n".join(head + rows + tail + legend)


def _load(machine: dict[str, Any]) -> str:
    start = machine.get("loadavg") or ["?"]
    end = machine.get("loadavg_end") or ["?"]
    return f"{start[0]:.2g} at start, {end[0]:.2g} at end" if start[0] != "?" else "unknown"


def _runs_summary(results: dict[str, Any]) -> str:
    runs = sorted({c["runs"] for case in results["cases"] for c in case["comparisons"]})
    return "/".join(str(r) for r in runs) or "0"
