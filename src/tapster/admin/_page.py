"""The operator page (``GET /status``): the status figures as HTML.

Written on the server, every value escaped; the page reloads itself every
:data:`REFRESH` seconds (a ``<meta>`` refresh: no script, nothing to load).
"""

from __future__ import annotations

import html
import time
from typing import Any

__all__ = ["REFRESH", "render_status"]

#: Seconds between two reloads of the page.
REFRESH = 2

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.2em 0 .3em}
table{border-collapse:collapse}td,th{padding:.2em .8em .2em 0;text-align:left;vertical-align:top}
th{border-bottom:1px solid #ccc}.ok{color:#070}.bad{color:#b00}.warn{color:#a60}
pre{margin:0;white-space:pre-wrap}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def _mib(value: object) -> str:
    return f"{float(value) / 2**20:.1f} MiB" if isinstance(value, int | float) else "?"


def _level_class(level: object) -> str:
    return "bad" if level in ("ERROR", "CRITICAL") else "warn"


def _source(record: dict[str, Any]) -> str:
    worker = record.get("worker")
    logger = str(record.get("logger", ""))
    return f"[worker {worker}] {logger}" if worker is not None else logger


def _table(headings: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_status(status: dict[str, Any]) -> str:
    """The page for ``status`` (what ``/status.json`` answers)."""
    ready = not status.get("ready_reasons")
    live = not status.get("live_reasons")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<meta http-equiv='refresh' content='{REFRESH}'>",
        f"<title>{_e(status.get('application', 'tapster'))}: tapster status</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(status.get('application', ''))}</h1>",
        "<table id='summary'>",
        f"<tr><th>state</th><td id='state'>{_e(status.get('state', ''))}</td></tr>",
        f"<tr><th>live</th><td class='{'ok' if live else 'bad'}' id='live'>"
        f"{'yes' if live else 'no'}</td></tr>",
        f"<tr><th>ready</th><td class='{'ok' if ready else 'bad'}' id='ready'>"
        f"{'yes' if ready else 'no'}</td></tr>",
        f"<tr><th>tapster</th><td>{_e(status.get('version', ''))}</td></tr>",
        f"<tr><th>pid</th><td>{_e(status.get('pid', ''))}</td></tr>",
        f"<tr><th>uptime</th><td>{_duration(float(status.get('uptime', 0)))}</td></tr>",
        f"<tr><th>loop</th><td>{_e(status.get('loop', ''))}</td></tr>",
        "</table>",
    ]
    reasons = [*status.get("live_reasons", []), *status.get("ready_reasons", [])]
    if reasons:
        items = "".join(f"<li>{_e(r)}</li>" for r in reasons)
        parts.append(f"<h2>Not ready because</h2><ul id='reasons' class='bad'>{items}</ul>")
    services = status.get("services", [])
    parts.append("<h2>Services</h2>")
    parts.append(
        _table(
            ["service", "type", "running", "listening on"],
            [
                [
                    _e(s.get("name", "")),
                    _e(s.get("type", "")),
                    "yes" if s.get("running") else "no",
                    _e(", ".join(s.get("listening", [])) or "-"),
                ]
                for s in services
            ],
            "services",
        )
    )
    workers = status.get("workers")
    if workers is not None:
        parts.append("<h2>Workers</h2>")
        parts.append(
            _table(
                ["worker", "pid", "state", "uptime", "memory", "restarts"],
                [
                    [
                        _e(w.get("number", "")),
                        _e(w.get("pid", "")),
                        _e(w.get("state", "")),
                        _duration(float(w.get("uptime", 0))),
                        _mib(w.get("memory")),
                        _e(w.get("restarts", 0)),
                    ]
                    for w in workers
                ],
                "workers",
            )
        )
    recent = status.get("recent", [])
    parts.append("<h2>Recent warnings and errors</h2>")
    if recent:
        parts.append(
            _table(
                ["time", "level", "logger", "message"],
                [
                    [
                        _e(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("time", 0)))),
                        f"<span class='{_level_class(r.get('level'))}'>"
                        f"{_e(r.get('level', ''))}</span>",
                        _e(_source(r)),
                        f"<pre>{_e(r.get('message', ''))}</pre>",
                    ]
                    for r in recent
                ],
                "recent",
            )
        )
    else:
        parts.append("<p id='recent'>none</p>")
    parts.append("</body></html>\n")
    return "".join(parts)
