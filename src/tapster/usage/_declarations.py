"""Turn the declarations of an ``Options`` class into one lookup table.

``parameters`` and ``flags`` rows and ``opt_*`` handler methods are collected over
the whole class hierarchy (base classes first, so a subclass can redefine a row),
once per class, and cached. Parsing, help and shell completion all read this
table, so an option is described in exactly one place.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

PARAMETER = "parameter"
FLAG = "flag"
HANDLER = "handler"


class Option:
    """One command-line option, with every spelling that reaches it.

    ``kind`` says where the option was declared: a ``parameter`` row stores its
    (coerced) value under ``key``, a ``flag`` row stores ``True``, a ``handler``
    (an ``opt_*`` method) stores nothing itself. When ``method`` is set, that
    method is called (with the coerced value when ``takes_value``) instead of
    storing: a row and a handler of the same name merge, the row bringing its
    short form, default, doc and coercer, the handler doing the work.
    """

    __slots__ = (
        "coerce",
        "default",
        "doc",
        "handler",
        "key",
        "kind",
        "longs",
        "method",
        "shorts",
        "takes_value",
    )

    def __init__(
        self,
        key: str,
        kind: str,
        *,
        longs: list[str],
        shorts: list[str],
        takes_value: bool,
        default: Any = None,
        doc: str = "",
        coerce: Callable[[str], Any] | None = None,
        method: str | None = None,
        handler: object = None,
    ) -> None:
        self.key = key
        self.kind = kind
        self.longs = longs
        self.shorts = shorts
        self.takes_value = takes_value
        self.default = default
        self.doc = doc
        self.coerce = coerce
        self.method = method
        self.handler = handler

    @property
    def display(self) -> str:
        """The main spelling, as a user types it: ``--port`` or ``-p``."""
        return "--" + self.longs[0] if self.longs else "-" + self.shorts[0]

    @property
    def metavar(self) -> str:
        """The placeholder for the value in help.

        The coercer's (or handler's) ``metavar`` when it has one (``PORT``,
        ``FILE``), else the last word of the name in capitals:
        ``--shutdown-timeout=TIMEOUT``.
        """
        for source in (self.coerce, self.handler):
            declared = getattr(source, "metavar", None)
            if isinstance(declared, str) and declared:
                return declared
        base = self.longs[0] if self.longs else self.key
        return base.rstrip("-").rsplit("-", 1)[-1].upper() or base.upper()

    def __repr__(self) -> str:
        return f"<Option {self.display} {self.kind}>"


class ClassSpec:
    """Everything the parser needs to know about one ``Options`` class."""

    __slots__ = ("by_long", "by_short", "defaults", "options")

    def __init__(self, options: list[Option]) -> None:
        self.options = options
        self.by_long: dict[str, Option] = {}
        self.by_short: dict[str, Option] = {}
        self.defaults: dict[str, Any] = {}
        for option in options:
            for name in option.longs:
                self.by_long[name] = option
            for letter in option.shorts:
                other = self.by_short.get(letter)
                if other is not None:
                    raise TypeError(
                        f"short option -{letter} is declared for both "
                        f"{other.display} and {option.display}"
                    )
                self.by_short[letter] = option
            if option.kind == PARAMETER:
                self.defaults[option.key] = option.default
            elif option.kind == FLAG:
                self.defaults[option.key] = False


_CACHED = "_tapster_usage_spec"


def class_spec(cls: type) -> ClassSpec:
    """The option table of ``cls``, built on first use and kept on the class itself."""
    spec = cls.__dict__.get(_CACHED)
    if not isinstance(spec, ClassSpec):
        spec = _build(cls)
        setattr(cls, _CACHED, spec)
    return spec


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def _clean(doc: object) -> str:
    return " ".join(doc.split()) if isinstance(doc, str) else ""


def _short(value: object, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if not isinstance(value, str) or len(value) != 1 or value == "-":
        raise TypeError(f"{where}: a short option is one character, not {value!r}")
    return [value]


def _rows(cls: type, attribute: str) -> Iterable[tuple[type, tuple[Any, ...]]]:
    for klass in reversed(cls.__mro__):
        rows = klass.__dict__.get(attribute)
        if rows is None or isinstance(rows, property):
            continue
        if isinstance(rows, str | bytes):
            raise TypeError(f"{klass.__qualname__}.{attribute} must be a sequence of rows")
        for row in rows:
            if isinstance(row, str | bytes) or not hasattr(row, "__len__"):
                raise TypeError(f"{klass.__qualname__}.{attribute}: bad row {row!r}")
            yield klass, tuple(row)


_VARARGS = 0x04  # inspect.CO_VARARGS: inspect itself costs the help path its imports


def positional_parameters(function: object) -> tuple[list[str], int, str | None] | None:
    """The positional parameters of a method after ``self``, read from its code object.

    ``(names, how many of them have defaults, name of its *args or None)``; ``None``
    for a callable without Python code. Handlers (``opt_*``: one value or none) and
    ``parse_args`` (the synopsis and the argument count) are read here, and only here.
    """
    function = getattr(function, "__func__", function)
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    count = int(code.co_argcount)
    names = [str(name) for name in code.co_varnames[1:count]]
    defaults = len(getattr(function, "__defaults__", None) or ())
    star = None
    if code.co_flags & _VARARGS:  # named after the keyword-only ones in co_varnames
        star = str(code.co_varnames[count + int(code.co_kwonlyargcount)])
    return names, defaults, star


def _build(cls: type) -> ClassSpec:
    merged: dict[str, Option] = {}

    for klass, row in _rows(cls, "parameters"):
        where = f"{klass.__qualname__}.parameters"
        if not 1 <= len(row) <= 5 or not isinstance(row[0], str) or not row[0]:
            raise TypeError(f"{where}: a row is (long, short, default, doc, coerce), not {row!r}")
        long, short, default, doc, coerce = (*row, None, None, None, None)[:5]
        if coerce is not None and not callable(coerce):
            raise TypeError(f"{where}: the coercer of {long!r} is not callable")
        merged[_dashed(long)] = Option(
            long,
            PARAMETER,
            longs=[_dashed(long)],
            shorts=_short(short, where),
            takes_value=True,
            default=default,
            doc=_clean(doc),
            coerce=None if coerce is str else coerce,
        )

    for klass, row in _rows(cls, "flags"):
        where = f"{klass.__qualname__}.flags"
        if not 1 <= len(row) <= 3 or not isinstance(row[0], str) or not row[0]:
            raise TypeError(f"{where}: a row is (long, short, doc), not {row!r}")
        long, short, doc = (*row, None, None)[:3]
        merged[_dashed(long)] = Option(
            long,
            FLAG,
            longs=[_dashed(long)],
            shorts=_short(short, where),
            takes_value=False,
            doc=_clean(doc),
        )

    # Handler methods, grouped by the function object: names bound to the same
    # function are synonyms, and a one-letter name is a short form.
    names: set[str] = set()
    for klass in cls.__mro__:
        names.update(n for n in klass.__dict__ if n.startswith("opt_") and len(n) > 4)
    groups: dict[int, tuple[object, list[str]]] = {}
    for attribute in sorted(names):
        function = getattr(cls, attribute, None)
        if function is None:
            continue  # a subclass switched an inherited handler off
        key = id(getattr(function, "__func__", function))
        groups.setdefault(key, (function, []))[1].append(_dashed(attribute[4:]))

    no_version = getattr(cls, "version", None) is None
    for function, group in groups.values():
        if no_version and "version" in group:
            continue  # --version (and its synonyms) only when there is a version
        where = f"{cls.__qualname__}.opt_{group[0].replace('-', '_')}"
        parameters = positional_parameters(function)
        count = None if parameters is None else len(parameters[0])
        if count not in (0, 1):
            raise TypeError(f"{where} must take (self) or (self, value)")
        longs = sorted((n for n in group if len(n) > 1), key=lambda n: (-len(n), n))
        shorts = [n for n in group if len(n) == 1]
        attribute = "opt_" + (longs[0] if longs else shorts[0]).replace("-", "_")
        doc = _clean(getattr(function, "__doc__", None))
        declared: Option | None = next((merged.pop(n) for n in longs if n in merged), None)
        if declared is not None:
            if declared.takes_value != (count == 1):
                raise TypeError(
                    f"{where}: the handler and the {declared.kind} row of the same name "
                    "disagree on whether the option takes a value"
                )
            option = declared
            option.method = attribute
            option.handler = function
            option.longs = [declared.longs[0], *(n for n in longs if n != declared.longs[0])]
            option.shorts = declared.shorts + [s for s in shorts if s not in declared.shorts]
            option.doc = doc or declared.doc
        else:
            option = Option(
                longs[0] if longs else shorts[0],
                HANDLER,
                longs=longs,
                shorts=shorts,
                takes_value=count == 1,
                doc=doc,
                method=attribute,
                handler=function,
            )
        merged[option.longs[0] if option.longs else "-" + option.shorts[0]] = option

    options = sorted(merged.values(), key=_sort_key)
    return ClassSpec(options)


def _sort_key(option: Option) -> tuple[str, str]:
    name = option.longs[0] if option.longs else option.shorts[0]
    return (name.lower(), name)
