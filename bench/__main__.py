"""``python -m bench [CASE ...]``: run benchmark cases, write JSON, print a Markdown table."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bench._env import Context
from bench._harness import listing, markdown, run_cases, select_cases, write_results


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _python_name() -> str:
    """How the interpreter running us is best named in the recorded command."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return "python"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure tapster side by side with twistd (Twisted from PyPI) in one run.",
        epilog="With no CASE, every default case runs. See docs/benchmarks.md.",
    )
    parser.add_argument("cases", nargs="*", metavar="CASE", help="case names or numbers")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="print the table of a results file and exit"
    )
    parser.add_argument("--runs", type=_positive, help="runs per side (default: per case, >=10)")
    parser.add_argument("--warmup", type=_non_negative, help="warm-up runs per side (default 1)")
    parser.add_argument("--quick", action="store_true", help="shorter loads, for trying a case out")
    parser.add_argument("--output", type=Path, help="results JSON path (default bench/results/)")
    parser.add_argument(
        "--tapster-python", type=Path, help="interpreter running tapster (default .venv)"
    )
    parser.add_argument(
        "--twisted-python",
        type=Path,
        help="interpreter with Twisted (default bench/.venv-twisted, made on first use)",
    )
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help="never create the Twisted venv (nor gunicorn's); a side without its venv is "
        "unavailable",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the chosen cases; exit 0 when every side ran or was unavailable, 1 on errors."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(listing())
        return 0
    if args.render is not None:
        try:
            print(markdown(json.loads(args.render.read_text())))
        except (OSError, ValueError, KeyError) as exc:
            print(f"bench: cannot render {args.render}: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        cases, skipped = select_cases(args.cases)
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    for message in skipped:
        print(f"bench: skipped: {message}", file=sys.stderr)
    if not cases:
        print("bench: no case to run (see --list)", file=sys.stderr)
        return 2
    ctx = Context(
        runs=args.runs,
        warmup=args.warmup,
        quick=args.quick,
        tapster_python=args.tapster_python,
        twisted_python=args.twisted_python,
        setup_twisted=not args.no_setup,
    )
    if args.runs is not None and args.runs < 10:
        print(
            f"bench: note: {args.runs} runs per side is for trying cases out; use >= 10",
            file=sys.stderr,
        )
    command = shlex.join(
        [_python_name(), "-m", "bench", *(argv if argv is not None else sys.argv[1:])]
    )
    try:
        results = run_cases(cases, ctx, command=command)
    finally:
        ctx.close()
    path = write_results(results, args.output)
    print(markdown(results))
    print(f"bench: results written to {path}", file=sys.stderr)
    failed = any(
        side["status"] == "error"
        for case in results["cases"]
        for cmp in case["comparisons"]
        for side in cmp["sides"].values()
    ) or any(case["status"] == "error" for case in results["cases"])
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. `python -m bench --list | head`
        sys.stderr.close()
        sys.exit(1)
