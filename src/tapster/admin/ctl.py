"""``tapsterctl --admin PATH COMMAND``: talk to a running tapster's unix admin socket.

Commands: ``status`` (the operator page's figures), ``reload``, ``reopen-logs``,
``stop`` and ``workers N``. Human output by default, ``--json`` for scripts
(the endpoint's own JSON). A one-line error and exit 1 when nothing answers
or the action is refused; exit 2 for a usage error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["main"]

PROG = "tapsterctl"
TIMEOUT = 10.0


class CtlError(Exception):
    """A problem to report on one line and exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}\nRun '{PROG} --help' for usage.\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Ask a running tapster (started with --admin unix:PATH) for its status, "
        "or tell it to reload, reopen its logs, stop, or run N workers.",
    )
    parser.add_argument(
        "--admin", required=True, metavar="PATH", help="the admin endpoint's unix socket"
    )
    parser.add_argument("--json", action="store_true", help="print the endpoint's JSON answer")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", help="version, uptime, readiness, services, workers")
    commands.add_parser("reload", help="replace the workers with freshly started ones")
    commands.add_parser("reopen-logs", help="reopen the log file (after logrotate)")
    commands.add_parser("stop", help="stop gracefully")
    workers = commands.add_parser("workers", help="run N workers")
    workers.add_argument("count", type=_count, metavar="N", help="the number of workers, 1 or more")
    return parser


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of workers, 1 or more: {text!r}")
    return int(text)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _ask(path: str, method: str, target: str) -> tuple[int, Any]:
    conn = _UnixConnection(path)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        body = response.read()
    except FileNotFoundError:
        raise CtlError(
            f"no admin socket at {path}: is tapster running with --admin unix:{path}?"
        ) from None
    except ConnectionRefusedError:
        raise CtlError(f"nothing answers on {path}: tapster is not running") from None
    except PermissionError:
        raise CtlError(f"cannot connect to {path}: permission denied") from None
    except TimeoutError:
        raise CtlError(f"{path} did not answer within {TIMEOUT:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise CtlError(f"cannot talk to {path}: {exc}") from None
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, {"message": body.decode("utf-8", "replace").strip()}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s"


def _show_status(info: dict[str, Any]) -> str:
    live, ready = not info.get("live_reasons"), not info.get("ready_reasons")
    lines = [
        f"{info.get('application')} ({info.get('role')}): {info.get('state')}, "
        f"{'live' if live else 'NOT LIVE'}, {'ready' if ready else 'NOT READY'}",
        f"tapster {info.get('version')}, pid {info.get('pid')}, "
        f"up {_duration(float(info.get('uptime', 0)))}, loop {info.get('loop')}",
        f"listening on {', '.join(info.get('listening') or []) or 'nothing'}",
    ]
    for reason in [*info.get("live_reasons", []), *info.get("ready_reasons", [])]:
        lines.append(f"  - {reason}")
    workers = info.get("workers")
    if workers:
        lines.append("workers:")
        for w in workers:
            memory = w.get("memory")
            mib = f"{memory / 2**20:.1f} MiB" if isinstance(memory, int | float) else "?"
            lines.append(
                f"  {w.get('number')}: pid {w.get('pid')}, {w.get('state')}, "
                f"up {_duration(float(w.get('uptime', 0)))}, {mib}, "
                f"{w.get('restarts', 0)} restarts"
            )
    for record in (info.get("recent") or [])[:5]:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.get("time", 0)))
        first = str(record.get("message", "")).splitlines()[0:1] or [""]
        lines.append(f"{stamp} {record.get('level')} {record.get('logger')}: {first[0]}")
    return "\n".join(lines) + "\n"


def run(argv: Sequence[str]) -> int:
    """Run one command; the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "status":
        status, answer = _ask(args.admin, "GET", "/status.json")
    else:
        target = f"/control/{args.command}"
        if args.command == "workers":
            target += f"?count={args.count}"
        status, answer = _ask(args.admin, "POST", target)
    if args.json:
        sys.stdout.write(json.dumps(answer, indent=1) + "\n")
    elif args.command == "status" and status == 200:
        sys.stdout.write(_show_status(answer))
    elif status == 200:
        sys.stdout.write(f"{answer.get('message', 'done')}\n")
    if status != 200:
        message = answer.get("message") if isinstance(answer, dict) else None
        sys.stderr.write(f"{PROG}: {args.command} refused ({status}): {message or answer}\n")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``tapsterctl`` command."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except CtlError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
