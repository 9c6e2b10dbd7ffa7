"""Plugin kinds: the abstract classes a plugin object is an instance of.

A kind names itself with a stable string (``plugin_kind``) so that callers can
ask the cache about plugins of a kind without importing the module that
defines it. Every subclass of :class:`PluginKind` that defines ``plugin_kind``
in its own body is a kind (it registers itself when its class is created), and
membership is tested with ``isinstance``, so ``Kind.register(cls)`` works for
plugin classes that cannot inherit.
"""

from __future__ import annotations

import abc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


class PluginKind(abc.ABC):
    """Abstract base of every plugin kind.

    A kind class defines in its own body:

    - ``plugin_kind``: a stable public id, e.g. ``"tapster.service.ServiceMaker"``;
    - ``plugin_name_field``: the attribute that names a plugin, e.g. ``"tapname"``;
    - ``plugin_fields``: string attributes recorded in the cache so that a
      plugin can be listed without importing it, e.g. ``("tapname", "description")``.

    Intermediate abstract classes that do not define ``plugin_kind`` in their
    own body are not kinds.
    """

    __slots__ = ()

    plugin_kind: ClassVar[str]
    plugin_name_field: ClassVar[str] = "name"
    plugin_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "plugin_kind" not in own:
            return
        if not isinstance(own["plugin_kind"], str) or not own["plugin_kind"]:
            raise TypeError(f"{cls.__qualname__}.plugin_kind must be a non-empty string")
        if not isinstance(cls.plugin_name_field, str):
            raise TypeError(f"{cls.__qualname__}.plugin_name_field must be a string")
        fields = cls.plugin_fields
        if not isinstance(fields, tuple) or not all(isinstance(f, str) for f in fields):
            raise TypeError(f"{cls.__qualname__}.plugin_fields must be a tuple of strings")
        _KINDS.append(cls)


_KINDS: list[type[PluginKind]] = []
"""Every class that defines ``plugin_kind`` in its own body, in definition order."""


def kind_classes() -> list[type[PluginKind]]:
    """Every plugin kind class defined so far, sorted by kind id.

    Kinds register themselves when their class is created, so this costs the
    same however many plugin classes exist. Only kinds whose defining module
    has been imported are known; a plugin module imports the kinds it
    implements, so importing it makes them known. A kind defined twice (its
    module reloaded) is listed twice: an object of either class belongs to it.
    """
    return sorted(_KINDS, key=lambda cls: str(cls.__dict__["plugin_kind"]))


def kind_id(kind: type | str) -> str:
    """The kind id of ``kind``, given as a kind class or as its id string."""
    if isinstance(kind, str):
        return kind
    value = kind.__dict__.get("plugin_kind")
    if not isinstance(value, str):
        raise TypeError(f"{kind.__qualname__} is not a plugin kind (it defines no plugin_kind)")
    return value


def describe_object(
    obj: object, kinds: list[type[PluginKind]]
) -> tuple[dict[str, str], dict[str, str]] | None:
    """What the cache records about ``obj``: ``({kind id: name}, {field: value})``.

    Returns ``None`` when ``obj`` is an instance of no kind. Only string values
    are recorded; an attribute that is missing, not a string, or raises is left out.
    """
    names: dict[str, str] = {}
    fields: dict[str, str] = {}
    for kind in kinds:
        try:
            matches = isinstance(obj, kind)
        except Exception:
            matches = False
        if not matches:
            continue
        for field in (kind.plugin_name_field, *kind.plugin_fields):
            if field not in fields:
                value = _string_attribute(obj, field)
                if value is not None:
                    fields[field] = value
        names[kind.plugin_kind] = fields.get(kind.plugin_name_field, "")
    if not names:
        return None
    return names, fields


def _string_attribute(obj: object, name: str) -> str | None:
    try:
        value = getattr(obj, name)
    except Exception:
        return None
    return value if isinstance(value, str) else None
