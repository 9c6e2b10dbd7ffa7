"""The listing behind ``tapster --plugins``: every plugin, every problem, and a verdict."""

from __future__ import annotations

from typing import Any

from tapster.plugin._registry import PluginInfo, PluginProblem, _info, _scan


class PluginReport:
    """Every discovered plugin (one entry per kind it has) and every problem.

    ``ok`` is false when some plugin is broken; shadowed modules alone do not
    make it false. ``exit_status`` is what ``tapster --plugins`` returns.
    """

    __slots__ = ("plugins", "problems")

    def __init__(self, plugins: list[tuple[str, PluginInfo]], problems: list[PluginProblem]):
        self.plugins = plugins
        self.problems = problems

    @property
    def ok(self) -> bool:
        return not any(p.broken for p in self.problems)

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def format(self) -> str:
        """The human-readable listing, one plugin per line, grouped by kind."""
        lines: list[str] = []
        current = None
        for kind, info in self.plugins:
            if kind != current:
                if lines:
                    lines.append("")
                lines.append(f"{kind}:")
                current = kind
            summary = _summary(info)
            source = "cached" if info.from_cache else "scanned"
            lines.append(f"  {info.name:<20} {summary}".rstrip())
            lines.append(f"  {'':<20} {info.module}:{info.attribute} in {info.origin} ({source})")
        if not self.plugins:
            lines.append("no plugins found")
        if self.problems:
            lines.append("")
            lines.append("problems:")
            for problem in self.problems:
                lines.append(f"  {problem.category}: {problem.message}")
            if not self.ok:
                lines.append(
                    "  (a broken module is tried again when its file changes;"
                    " 'tapster --rebuild-plugin-cache' retries them all)"
                )
        lines.append("")
        if self.ok:
            lines.append(f"{len(self.plugins)} plugin(s), all well")
        else:
            broken = sum(p.broken for p in self.problems)
            lines.append(f"{len(self.plugins)} plugin(s), {broken} broken")
        return "\n".join(lines) + "\n"


def _summary(info: PluginInfo, width: int = 72) -> str:
    """The first sentence of the plugin's description (or of its first other field), shortened."""
    fields = info.fields
    text = fields.get("description")
    if text is None:
        text = next((v for v in fields.values() if v != info.name), "")
    paragraph = " ".join(text.strip().split("\n\n", 1)[0].split())
    sentence = paragraph.split(". ", 1)[0]
    if sentence != paragraph:
        sentence += "."
    if len(sentence) > width:
        sentence = sentence[: width - 3].rsplit(" ", 1)[0] + "..."
    return sentence


def plugin_report() -> PluginReport:
    """Scan every source (through the caches) and gather the ``--plugins`` listing.

    Plugins are listed by kind id, then in discovery order within a kind.
    """
    scan = _scan()
    rows: list[tuple[str, PluginInfo]] = []
    for plugin, module, origin, from_cache in scan.plugins():
        kinds = plugin[1]
        assert isinstance(kinds, dict)
        for kind in kinds:
            rows.append((kind, _info(plugin, kind, module, origin, from_cache)))
    problems = scan.problems()
    _add_twisted(rows, problems)
    order = {kind: i for i, kind in enumerate(sorted({k for k, _ in rows}))}
    rows.sort(key=lambda row: order[row[0]])
    return PluginReport(rows, problems)


def _add_twisted(rows: list[tuple[str, Any]], problems: list[Any]) -> None:
    """Twisted's service makers and their problems (none unless Twisted is importable)."""
    from tapster.twisted_compat._scan import describe

    taken = [info.name for kind, info in rows if kind == "tapster.service.ServiceMaker"]
    infos, found = describe(taken)
    rows.extend((info.kinds[0], info) for info in infos)
    problems.extend(found)
