"""Directory listings: scanning a folder, and rendering it as HTML or JSON.

``scan`` does the file system work (run it in a thread); ``render_html`` and
``render_json`` are pure functions of its result.
"""

from __future__ import annotations

import html
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of a listing."""

    name: str
    kind: str  # "directory", "file" or "other"
    size: int | None
    modified: float


def scan(folder: str, allowed: Callable[[str], bool]) -> list[Entry]:
    """List ``folder``: directories first, then files, each sorted by name.

    ``allowed`` gets each entry's full path and hides what may not be served
    (for example symlinks that lead outside the root).
    """
    entries = []
    with os.scandir(folder) as it:
        for item in it:
            path = os.path.join(folder, item.name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not allowed(path):
                continue
            try:
                item.name.encode("utf-8")
            except UnicodeEncodeError:
                continue  # not addressable by a UTF-8 URL
            if stat.S_ISDIR(st.st_mode):
                entries.append(Entry(item.name, "directory", None, st.st_mtime))
            elif stat.S_ISREG(st.st_mode):
                entries.append(Entry(item.name, "file", st.st_size, st.st_mtime))
            else:
                entries.append(Entry(item.name, "other", None, st.st_mtime))
    entries.sort(key=lambda e: (e.kind != "directory", e.name.casefold(), e.name))
    return entries


def human_size(size: int) -> str:
    """``1536`` -> ``"1.5 KiB"``: the size column of the HTML page."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _href(entry: Entry) -> str:
    return quote(entry.name) + ("/" if entry.kind == "directory" else "")


_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;
max-width:60rem;padding:0 1rem;color:#222;background:#fff}
h1{font-size:1.3rem;font-weight:600;word-break:break-all}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e4e4e4}
th{font-weight:600;color:#555;background:#f6f6f6}
td.size,th.size{text-align:right;white-space:nowrap}
td.date{white-space:nowrap;color:#555}
a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
footer{margin-top:1rem;color:#888;font-size:.85rem}
"""


def render_html(url_path: str, entries: list[Entry]) -> bytes:
    """A listing page for the folder at ``url_path`` (the decoded URL path, ending in /)."""
    title = html.escape(f"Index of {url_path}")
    rows = []
    if url_path != "/":
        rows.append(
            '<tr><td><a href="../">../</a></td><td class="size">-</td><td class="date"></td></tr>'
        )
    for e in entries:
        label = html.escape(e.name + ("/" if e.kind == "directory" else ""))
        size = human_size(e.size) if e.size is not None else "-"
        rows.append(
            f'<tr><td><a href="{html.escape(_href(e))}">{label}</a></td>'
            f'<td class="size">{size}</td><td class="date">{_stamp(e.modified)}</td></tr>'
        )
    body = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>\n"
        f"<h1>{title}</h1>\n<table>\n"
        '<thead><tr><th>Name</th><th class="size">Size</th><th>Modified (UTC)</th></tr>'
        "</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n"
        f"<footer>{len(entries)} entries</footer>\n</body></html>\n"
    )
    return body.encode("utf-8")


def render_json(url_path: str, entries: list[Entry]) -> bytes:
    """The same listing as JSON: ``{"path", "entries": [{name, type, size, modified, href}]}``."""
    doc = {
        "path": url_path,
        "entries": [
            {
                "name": e.name,
                "type": e.kind,
                "size": e.size,
                "modified": datetime.fromtimestamp(e.modified, UTC).isoformat(timespec="seconds"),
                "href": _href(e),
            }
            for e in entries
        ],
    }
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def wants_json(accept: bytes | None) -> bool:
    """Whether an ``Accept`` header prefers JSON over HTML."""
    if not accept or b"json" not in accept:
        return False
    best_json = best_html = 0.0
    for item in accept.split(b","):
        media, _, params = item.strip().partition(b";")
        q = 1.0
        for p in params.split(b";"):
            k, _, v = p.strip().partition(b"=")
            if k.strip() == b"q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media == b"application/json" or media.endswith(b"+json"):
            best_json = max(best_json, q)
        elif media in (b"text/html", b"application/xhtml+xml"):
            best_html = max(best_html, q)
    return best_json > 0 and best_json >= best_html
