"""The plugin kind that turns a command line into a service."""

from __future__ import annotations

import abc

from tapster.plugin import PluginKind

TYPE_CHECKING = False
if TYPE_CHECKING:  # not at run time: the kind must not cost a plugin module asyncio
    from typing import Any, ClassVar

    from tapster.service._service import Service
    from tapster.usage import Options


class ServiceMaker(PluginKind):
    """A ``tapster`` subcommand: its name, one-line help, options and service.

    A plugin module defines a module-level instance of a subclass. The runner
    lists ``tapname`` and ``description`` from the plugin cache without
    importing the module, instantiates ``options`` (a
    ``tapster.usage.Options`` subclass) with no arguments, parses the
    subcommand's arguments with it, and passes the parsed options to
    ``make_service``.
    """

    plugin_kind: ClassVar[str] = "tapster.service.ServiceMaker"
    plugin_name_field: ClassVar[str] = "tapname"
    plugin_fields: ClassVar[tuple[str, ...]] = ("tapname", "description")

    tapname: str
    description: str
    options: type[Options]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "makeService" in cls.__dict__:
            from tapster._twisted_names import refuse_twisted_names

            refuse_twisted_names(cls, {"makeService": "make_service"})

    @abc.abstractmethod
    def make_service(self, options: Any) -> Service:
        """Build the service tree for the parsed ``options`` (an instance of ``options``)."""
