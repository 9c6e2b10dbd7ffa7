"""The listing behind ``tapster --plugins``: every plugin, every problem, and a verdict."""

from __future__ import annotations

from tapster.plugin._registry import PluginInfo, PluginProblem, _scan


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
            description = info.fields.get("description", "").strip().splitlines()
            summary = description[0] if description else ""
            source = "cached" if info.from_cache else "scanned"
            lines.append(f"  {info.name:<20} {summary}")
            lines.append(f"  {'':<20} {info.module}:{info.attribute} in {info.origin} ({source})")
        if not self.plugins:
            lines.append("no plugins found")
        if self.problems:
            lines.append("")
            lines.append("problems:")
            for problem in self.problems:
                label = "broken" if problem.broken else "shadowed"
                lines.append(f"  {label}: {problem.message}")
        lines.append("")
        if self.ok:
            lines.append(f"{len(self.plugins)} plugin(s), all well")
        else:
            broken = sum(p.broken for p in self.problems)
            lines.append(f"{len(self.plugins)} plugin(s), {broken} broken")
        return "\n".join(lines) + "\n"


def plugin_report() -> PluginReport:
    """Scan every source (through the caches) and gather the ``--plugins`` listing.

    Plugins are listed by kind id, then in discovery order within a kind.
    """
    scan = _scan()
    rows: list[tuple[str, PluginInfo]] = []
    for record, module, origin, from_cache in scan.plugins():
        kinds = record["kinds"]
        fields = record["fields"]
        attribute = record["attribute"]
        assert isinstance(kinds, dict) and isinstance(fields, dict)
        assert isinstance(attribute, str)
        for kind, name in kinds.items():
            info = PluginInfo(
                name or attribute,
                fields,
                kinds=tuple(kinds),
                module=module,
                attribute=attribute,
                origin=origin,
                from_cache=from_cache,
            )
            rows.append((kind, info))
    order = {kind: i for i, kind in enumerate(sorted({k for k, _ in rows}))}
    rows.sort(key=lambda row: order[row[0]])
    return PluginReport(rows, scan.problems())
