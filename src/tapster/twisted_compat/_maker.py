"""A Twisted ``IServiceMaker`` seen as a tapster service maker, and its options.

:func:`load_maker` makes the event loop (the runner's ``--loop`` choice),
installs the reactor on it, sends Twisted's log to ``logging``, imports the
plugin module and returns a :class:`TwistedMaker`: ``options`` parses with the
plugin's own ``usage.Options`` (its ``--help``, ``--help-auth``,
``--help-auth-type`` and ``--auth`` are Twisted's), ``make_service`` calls
``makeService`` and roots the service in a Twisted ``Application`` named after
the command, as ``twistd`` does.
"""

from __future__ import annotations

from tapster.usage import Options, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Sequence
    from typing import Any

    from tapster.twisted_compat._scan import TwistedPluginInfo
    from tapster.twisted_compat._service import TwistedService

__all__ = ["TwistedMaker", "TwistedOptions", "load_maker"]


class TwistedOptions(Options):
    """tapster's handle on a Twisted ``usage.Options``: parsing is left to it entirely."""

    twisted_class: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.twisted_options = type(self).twisted_class()

    def parse_options(self, argv: Sequence[str] | None = None) -> None:
        """Parse ``argv`` with the Twisted options; their ``UsageError`` becomes tapster's."""
        from twisted.python import usage

        theirs = self.twisted_options
        if "synopsis" not in dir(type(theirs)):
            theirs.synopsis = f"Usage: {self.command_path()} [options]"
        try:
            theirs.parseOptions(list(argv or ()))
        except usage.UsageError as error:
            raise UsageError(str(error), options=self) from None

    def __getitem__(self, key: str) -> Any:
        return self.twisted_options[key]

    def __contains__(self, key: object) -> bool:
        return key in self.twisted_options


class TwistedMaker:
    """A tapster service maker around a Twisted ``IServiceMaker`` (``tapname`` = command)."""

    def __init__(self, maker: Any, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.twisted_maker = maker
        self.tapname = name
        self.description = str(getattr(maker, "description", "") or "")
        self.event_loop = loop
        """The loop the reactor runs on: the runner runs this one (no other)."""
        self.options = type(
            f"{type(maker.options).__name__}ForTapster",
            (TwistedOptions,),
            {"twisted_class": maker.options},
        )

    def make_service(self, options: TwistedOptions) -> TwistedService:
        """``makeService(options)`` in a Twisted ``Application``, wrapped for tapster."""
        from twisted.application import service

        from tapster.twisted_compat._service import TwistedService

        built = self.twisted_maker.makeService(options.twisted_options)
        application = service.Application(self.tapname)  # type: ignore[no-untyped-call]
        built.setServiceParent(application)
        return TwistedService(service.IService(application), self.event_loop)


def load_maker(info: TwistedPluginInfo) -> TwistedMaker:
    """Make the loop and the reactor, then import the plugin (in that order: see _reactor)."""
    import asyncio
    import importlib

    from tapster.runner import _loops
    from tapster.twisted_compat._reactor import install_reactor, log_to_stdlib

    spec, daemon = info.loop()
    name = _loops.resolved_name(spec)
    if daemon and name == "uvloop":
        # The loop exists before the daemon's fork (the reactor must exist when
        # the plugin is imported), and libuv's loop does not survive a fork.
        spec = "asyncio"
    loop = _loops.loop_factory(spec)()
    asyncio.set_event_loop(loop)
    install_reactor(loop)
    log_to_stdlib()
    module = importlib.import_module(info.module)
    maker: Any = module
    for part in info.attribute.split("."):
        maker = getattr(maker, part)
    return TwistedMaker(maker, info.name, loop)
