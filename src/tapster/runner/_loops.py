"""Choosing the event loop: ``auto``, ``asyncio``, ``uvloop`` or ``module:factory``.

A name-to-implementation table, as uvicorn has, plus ``module:attr`` for anything
custom. Checking a choice (:func:`check_loop_spec`) imports nothing, so that
parsing the command line stays free of side effects; :func:`loop_factory`
imports the chosen implementation on the run path only.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs the help path a few ms
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

__all__ = ["LoopError", "available_loops", "check_loop_spec", "loop_factory", "resolved_name"]

NAMED_LOOPS = ("auto", "asyncio", "uvloop")


class LoopError(Exception):
    """The chosen loop cannot be made here (not installed, bad factory)."""


def _has(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def check_loop_spec(spec: str) -> str:
    """Validate a ``--loop`` value without importing anything; raise ``ValueError``."""
    if spec in ("auto", "asyncio"):
        return spec
    if spec == "uvloop":
        if not _has("uvloop"):
            raise ValueError("uvloop is not installed here (pip install uvloop, or use asyncio)")
        return spec
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(
            f"unknown loop {spec!r}: use auto, asyncio, uvloop or module:factory (see --help-loops)"
        )
    if not all(part.isidentifier() for part in (*module.split("."), *attr.split("."))):
        raise ValueError(f"{spec!r} is not a module:factory name")
    return spec


def resolved_name(spec: str) -> str:
    """What ``spec`` means on this machine (``auto`` becomes a real name)."""
    if spec == "auto":
        return "uvloop" if _has("uvloop") else "asyncio"
    return spec


def available_loops() -> list[tuple[str, bool, str]]:
    """Rows of (name, available here, description) for ``--help-loops``."""
    uv = _has("uvloop")
    return [
        ("auto", True, f"uvloop when installed, else asyncio (here: {resolved_name('auto')})"),
        ("asyncio", True, "the standard library's event loop"),
        ("uvloop", uv, "libuv-based loop" + ("" if uv else " (not installed: pip install uvloop)")),
        ("module:factory", True, "any callable returning an asyncio event loop"),
    ]


def loop_factory(spec: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """Import the chosen implementation and return a callable that makes a new loop."""
    import asyncio

    name = resolved_name(spec)
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        try:
            import importlib

            uvloop = importlib.import_module("uvloop")
        except ImportError as exc:
            raise LoopError(f"cannot use uvloop: {exc}") from None
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    module_name, _, attr = name.partition(":")
    try:
        import importlib

        obj: object = importlib.import_module(module_name)
    except Exception as exc:
        raise LoopError(f"cannot import loop module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise LoopError(f"loop factory {name!r}: {module_name} has no {attr!r}") from None
    if not callable(obj):
        raise LoopError(f"loop factory {name!r} is not callable")
    custom = obj

    def make() -> asyncio.AbstractEventLoop:
        loop = custom()
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise LoopError(f"loop factory {name!r} returned {type(loop).__name__}, not a loop")
        return loop

    return make
