"""``Options``: a declarative command-line parser in the style of Twisted's usage."""

from __future__ import annotations

import sys
from _collections_abc import MutableMapping  # see _MappingBase below

from tapster.usage._declarations import FLAG, PARAMETER, class_spec, positional_parameters
from tapster.usage._errors import UsageError
from tapster.usage._parser import show, tokenize

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any, ClassVar, Self

    from tapster.usage._declarations import Option

    Sources = Callable[["Options", dict[Option, list[str | None]], list[str]], list[str]]

_TWISTED_NAMES = {
    "optParameters": "parameters",
    "optFlags": "flags",
    "subCommands": "subcommands",
    "defaultSubCommand": "default_subcommand",
    "longdesc": "long_description",
    "parseArgs": "parse_args",
    "postOptions": "post_options",
}
"""Twisted's names for what tapster's Options reads under another name."""


# Options is a MutableMapping, made the cheap way, as this module is on the
# start-up path of every ``tapster`` command. For type checkers it inherits
# ``MutableMapping[str, Any]``. At run time it is a plain class, registered as a
# MutableMapping and given the mixin methods as plain functions (at the end of
# the class body): inheriting them would make every Options subclass an ABC,
# which costs about twice as much to create as a plain class (a cold plugin scan
# creates one Options subclass per plugin module), and the ABC is taken from
# ``_collections_abc``, which Python has loaded at start-up, rather than from
# ``collections.abc`` (the ``collections`` package) or ``typing``.
if TYPE_CHECKING:
    _MappingBase = MutableMapping[str, "Any"]
else:
    _MappingBase = object


class Options(_MappingBase):
    """Declare a command's options; parse a command line; read the values by name.

    Subclasses declare ``parameters`` rows ``(long, short, default, doc, coerce)``,
    ``flags`` rows ``(long, short, doc)`` (trailing items optional), handler methods
    ``opt_<name>(self)`` or ``opt_<name>(self, value)``, ``subcommands`` rows
    ``(name, short, options_factory, doc)``, ``default_subcommand``, ``synopsis``,
    ``long_description`` and ``version``. Rows and handlers accumulate over the
    class hierarchy, so mixins can add options.

    After :meth:`parse_options`, parameters and flags are read as ``options[name]``
    (parameters default to their row's default, flags to ``False``), and
    ``subcommand``, ``sub_options`` and ``parent`` describe the command chain.
    """

    parameters: ClassVar[Sequence[Sequence[Any]]] = ()
    flags: ClassVar[Sequence[Sequence[Any]]] = ()
    default_subcommand: str | None = None
    synopsis: str | None = None
    long_description: str | None = None
    version: str | None = None

    subcommand: str | None
    sub_options: Options | None
    parent: Options | None

    _values: dict[str, Any]

    # Other sources of values (tapster.config: environment, files), asked after the
    # command line for what it left unset: a callable ``(options, given, rest) ->
    # rest``, ``given`` mapping each option the command line gave to its raw
    # values. None (the default) costs parsing nothing.
    _tapster_sources: Sources | None = None

    # What --help shows as each option's name in another source ("[env: NAME]"): a
    # callable ``option -> name or None``. None (the default) shows nothing.
    _tapster_variable: Callable[[Option], str | None] | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # The values exist before any __init__ runs, so a subclass or mixin may
        # set them before (or without) calling super().__init__().
        self = super().__new__(cls)
        self._values = dict(class_spec(cls).defaults)
        self.subcommand = None
        self.sub_options = None
        self.parent = None
        return self

    def __init__(self) -> None:
        super().__init__()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not _TWISTED_NAMES.keys().isdisjoint(cls.__dict__):  # rare: import only then
            from tapster._twisted_names import refuse_twisted_names

            refuse_twisted_names(cls, _TWISTED_NAMES)

    # -- declarations that may be computed -------------------------------------------------

    @property
    def subcommands(self) -> Sequence[Sequence[Any]]:
        """Rows ``(name, short, options_factory, doc)``; none by default.

        Override with a class attribute or a property (to build the list lazily).
        Only the chosen row's factory is ever called while parsing.
        """
        return ()

    # -- the mapping ---------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        # Names only: values may be secrets (passwords, keys) and reprs end up in logs.
        return f"<{type(self).__qualname__} {sorted(self._values)!r}>"

    # -- parsing -------------------------------------------------------------------------

    def parse_options(self, argv: Sequence[str] | None = None) -> None:
        """Parse ``argv`` (default ``sys.argv[1:]``), then run ``post_options``.

        Raises :class:`UsageError` for every problem in the command line; ``--help``
        and ``--version`` print to stdout and raise ``SystemExit(0)``.
        """
        if argv is None:
            argv = sys.argv[1:]
        try:
            sources = self._tapster_sources
            if sources is None:
                rest = tokenize(class_spec(type(self)), argv, self._apply)
            else:
                rest = _with_sources(self, sources, argv)
            rows = self.subcommands
            if rows:
                self._parse_subcommand(rows, rest)
            else:
                self._call_parse_args(rest)
            self.post_options()
        except UsageError as error:
            if error.options is None:
                error.options = self
            raise

    def parse_args(self, *args: str) -> None:
        """Receive the positional arguments; override to accept some.

        The default accepts none. The argument count is checked against the
        override's signature before it is called, so a wrong count is a
        :class:`UsageError` that names what was expected.
        """
        if args:
            raise UsageError(
                f"unexpected argument {show(args[0])} (this command takes no arguments)"
            )

    def post_options(self) -> None:
        """Check the options together once everything is parsed; override freely.

        Runs after the positional arguments and after the subcommand's own
        ``post_options``. Raise :class:`UsageError` to reject the combination.
        """

    def _apply(self, option: Option, spelled: str, raw: str | None, where: str = "") -> None:
        """Coerce ``raw`` and store it or hand it to the option's handler.

        ``where`` names a source other than the command line (``TAPSTER_PORT='x'``):
        a refused value is then reported as ``WHERE: REASON``.
        """
        value: Any = raw
        if raw is not None and option.coerce is not None:
            value = _coerce(option.coerce, spelled, raw, where)
        if option.method is not None:
            handler = getattr(self, option.method)
            try:
                if option.takes_value:
                    handler(value)
                else:
                    handler()
            except UsageError:
                raise
            except ValueError as error:
                raise UsageError(f"{where or 'option ' + spelled}: {error}") from None
        elif option.kind == PARAMETER:
            self._values[option.key] = value
        elif option.kind == FLAG:
            self._values[option.key] = True

    def _parse_subcommand(self, rows: Sequence[Sequence[Any]], rest: list[str]) -> None:
        if rest:
            name, rest = rest[0], rest[1:]
        elif self.default_subcommand is not None:
            name = self.default_subcommand
        else:
            return
        for row in rows:
            command, short, factory = row[0], row[1], row[2]
            if name == command or (short and name == short):
                break
        else:
            known = [str(row[0]) for row in rows]
            raise UsageError(_unknown_command(name, known), unknown_command=name)
        child = factory()
        if not isinstance(child, Options):
            raise TypeError(f"the options factory of command {command!r} returned {child!r}")
        self.subcommand = command
        self.sub_options = child
        child.parent = self
        child.parse_options(rest)

    def _call_parse_args(self, args: list[str]) -> None:
        low, high, names = _arity(type(self).parse_args)
        if len(args) < low:
            missing = names[len(args)].upper() if len(args) < len(names) else "ARGUMENT"
            raise UsageError(
                f"missing argument {missing} (expected {_expected(low, high)}, got {len(args)})"
            )
        if high is not None and len(args) > high:
            raise UsageError(
                f"unexpected argument {show(args[high])} "
                f"(expected {_expected(low, high)}, got {len(args)})"
            )
        self.parse_args(*args)

    # -- help ----------------------------------------------------------------------------

    def opt_help(self) -> None:
        """Display this help and exit."""
        sys.stdout.write(self.help_text())
        sys.stdout.flush()
        raise SystemExit(0)

    def opt_version(self) -> None:
        """Display the version and exit."""
        sys.stdout.write(f"{self.command_path()} {self.version}\n")
        sys.stdout.flush()
        raise SystemExit(0)

    def command_path(self) -> str:
        """The command as typed so far: ``tapster`` or ``tapster web``."""
        if self.parent is not None:
            return f"{self.parent.command_path()} {self.parent.subcommand}"
        return program_name()

    def get_synopsis(self) -> str:
        """The ``Usage: ...`` line."""
        from tapster.usage._help import synopsis

        return synopsis(self)

    def help_text(self, width: int | None = None) -> str:
        """The full ``--help`` text, wrapped to ``width`` (default: the terminal's)."""
        from tapster.usage._help import help_text

        return help_text(self, width)

    if not TYPE_CHECKING:  # see _MappingBase
        __contains__ = MutableMapping.__contains__
        keys = MutableMapping.keys
        items = MutableMapping.items
        values = MutableMapping.values
        get = MutableMapping.get
        __eq__ = MutableMapping.__eq__
        pop = MutableMapping.pop
        popitem = MutableMapping.popitem
        clear = MutableMapping.clear
        update = MutableMapping.update
        setdefault = MutableMapping.setdefault
        __hash__ = None
        __reversed__ = None


MutableMapping.register(Options)


def program_name() -> str:
    """The name this program was started as (``tapster`` for ``python -m tapster``)."""
    import os.path

    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "tapster"
    name = os.path.basename(argv0)
    if name == "__main__.py":
        name = os.path.basename(os.path.dirname(os.path.abspath(argv0))) or name
    return name


def _unknown_command(name: str, known: list[str]) -> str:
    import difflib  # only on this error path

    message = f"unknown command {show(name)}"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"{message}; did you mean {close[0]}?"
    return f"{message} (commands: {', '.join(known)})"


def _with_sources(
    options: Options,
    sources: Sources,
    argv: Sequence[str],
) -> list[str]:
    """Tokenize ``argv`` noting what it gives, then let ``sources`` fill in the rest."""
    given: dict[Option, list[str | None]] = {}

    def apply(option: Option, spelled: str, raw: str | None) -> None:
        given.setdefault(option, []).append(raw)
        options._apply(option, spelled, raw)

    rest = tokenize(class_spec(type(options)), argv, apply)
    return sources(options, given, rest)


def _coerce(coerce: Callable[[str], Any], spelled: str, raw: str, where: str = "") -> Any:
    try:
        return coerce(raw)
    except UsageError:
        raise
    except ValueError as error:
        if coerce is int:
            detail = "expected an integer"
        elif coerce is float:
            detail = "expected a number"
        else:
            detail = str(error) or str(getattr(coerce, "coerce_doc", "") or "not accepted")
        if where:
            raise UsageError(f"{where}: {detail}") from None
        raise UsageError(f"option {spelled}: invalid value {show(raw)}: {detail}") from None


def _arity(function: object) -> tuple[int, int | None, list[str]]:
    """(fewest, most or None, names) of the positional arguments after ``self``."""
    parameters = positional_parameters(function)
    if parameters is None:
        return 0, None, []
    names, defaults, star = parameters
    return max(len(names) - defaults, 0), None if star else len(names), names


def _expected(low: int, high: int | None) -> str:
    def plural(n: int) -> str:
        return f"{n} argument" + ("" if n == 1 else "s")

    if high is None:
        return f"at least {plural(low)}"
    if low == high:
        return plural(low)
    return f"{low} to {plural(high)}"
