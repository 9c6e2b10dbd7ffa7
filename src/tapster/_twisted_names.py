"""Twisted's spellings that tapster would silently ignore, refused when a class is made.

An ``Options`` subclass with ``optParameters`` or a service maker with
``makeService`` (code ported from Twisted, or written from memory) would
otherwise parse no options or never be called, and fail later with a message
that hides the cause ("unknown option"). A class that also defines the tapster
name (code written for both) is left alone.
"""

from __future__ import annotations

__all__ = ["refuse_twisted_names"]


def refuse_twisted_names(cls: type, names: dict[str, str]) -> None:
    """Raise ``TypeError`` if ``cls`` defines a key of ``names`` but not its tapster value."""
    own = cls.__dict__
    for twisted, tapster in names.items():
        if twisted in own and tapster not in own:
            raise TypeError(
                f"{cls.__qualname__}.{twisted} is Twisted's spelling, which tapster ignores: "
                f"name it {tapster}"
            )
