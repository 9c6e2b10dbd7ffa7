"""The built-in ``tapster procmon`` command: a process supervisor."""

from __future__ import annotations

from typing import Any

from tapster.procmon._options import ProcmonOptions
from tapster.service import Service, ServiceMaker


class _ProcmonMaker(ServiceMaker):
    tapname = "procmon"
    description = "Run commands and keep them running, restarting them with backoff."
    options = ProcmonOptions

    def make_service(self, options: Any) -> Service:
        from tapster.procmon import ProcessMonitor, RestartPolicy

        monitor = ProcessMonitor(
            RestartPolicy(
                threshold=options["threshold"],
                killtime=options["killtime"],
                min_restart_delay=options["minrestartdelay"],
                max_restart_delay=options["maxrestartdelay"],
            )
        )
        for name, args in options["commands"].items():
            monitor.add_process(name, args)
        return monitor


procmon = _ProcmonMaker()
