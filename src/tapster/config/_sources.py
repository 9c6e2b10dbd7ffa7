"""The runner's other sources, merged: command line > environment > config file > default.

The runner's options and the chosen subcommand's options each get a
``_tapster_sources`` hook (see ``tapster.usage``): after the command line is read,
each option it did not give is taken, whole, from the highest source that gives
it. A source's values are raw texts fed to the option exactly as if typed after
``--name`` (same coercer, same handler, same checks in ``post_options``); only the
message of a refused value names the source instead of the option. A repeatable
option's list is replaced, not extended, by a higher source.

Nothing here runs for ``--help``, ``--version`` or the listing actions: the hook is
called only after the command line was read without one of those.
"""

from __future__ import annotations

import os

from tapster.config._environment import flag_value, list_value, tapster_variables
from tapster.config._names import env_prefix, file_key, is_repeatable, settable, variable_stem
from tapster.config._toml import ConfigFile, find_config
from tapster.usage import UsageError
from tapster.usage._parser import show

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from tapster.usage import Options
    from tapster.usage._declarations import Option

    Given = dict[Option, list[str | None]]

__all__ = ["Config", "Level", "Setting", "runner_sources"]

#: A secret read from a file (``NAME_FILE``, ``name-file``) may not be larger.
MAX_SECRET_SIZE = 1 << 20

_ACTIONS = frozenset({"plugins", "rebuild-plugin-cache", "completion"})
COMMAND_LINE = "command line"


class Setting:
    """Where one option's value came from (``origin``), and the raw values given there."""

    __slots__ = ("from_file", "option", "origin", "raws", "typed", "where")

    def __init__(
        self,
        option: Option,
        origin: str,
        raws: list[str | None],
        from_file: bool = False,
        typed: list[Any] | None = None,
        *,
        where: str = "",
    ) -> None:
        self.option = option
        self.origin = origin
        self.raws = raws
        self.from_file = from_file
        self.typed = raws if typed is None else typed  # as written: numbers stay numbers
        #: How an error names this value (``TAPSTER_WEB_LISTEN='x'``); "" on the command line.
        self.where = where


class Level:
    """One ``Options`` of the command (the runner's, the subcommand's) and what set its values."""

    def __init__(self, options: Options, name: str | None) -> None:
        self.options = options
        self.name = name
        self.settable = settable(options, runner=name is None)
        self.settings: dict[str, Setting] = {}


class Config:
    """The environment and the config file of one ``tapster`` run, and what each set."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.unclaimed = tapster_variables(environ)
        self.config_variable = environ.get("TAPSTER_CONFIG")
        self.file: ConfigFile | None = None
        self.levels: list[Level] = []
        self.subcommand_origin: str | None = None
        self.names: list[str] = []  # every subcommand's name

    def name_sources(self, error: UsageError) -> str:
        """``error``'s message, naming where the options it mentions came from.

        A plugin's ``post_options`` speaks of ``--listen``, whatever set it. A message
        that starts ``--listen: `` starts with the value's source instead
        (``TAPSTER_WEB_LISTEN='tcp:x': bad endpoint ...``); other options it mentions that
        the environment or the file set are named at the end (``(--daemon:
        TAPSTER_DAEMON='1')``). Options from the command line are left as they are.
        """
        import re

        message = error.message
        level = next((lv for lv in self.levels if lv.options is error.options), None)
        if level is None:
            return message
        named: list[str] = []
        for name in dict.fromkeys(re.findall(r"--([A-Za-z0-9][\w-]*)", message)):
            setting = level.settings.get(name)
            if setting is None or not setting.where or setting.where in message:
                continue
            if message.startswith(f"--{name}: "):
                message = f"{setting.where}: {message[len(name) + 4 :]}"
            else:
                named.append(f"--{name}: {setting.where}")
        return message + (f" ({'; '.join(named)})" if named else "")

    # -- the runner ------------------------------------------------------------------------

    def fill_runner(self, options: Options, given: Given, rest: list[str]) -> list[str]:
        """Fill the runner's options; find the config file; maybe name the subcommand."""
        level = Level(options, None)
        self.levels.append(level)
        variables = self._claim(level, "TAPSTER_")
        self._apply_variables(level, given, variables)
        self.file = self._find_file(options)
        table = self.file.data if self.file is not None else {}
        self._apply_table(level, given, variables, table, None)
        self.names = [str(row[0]) for row in options.subcommands]
        if self.file is not None:
            self._check_tables(table)
        command_line = [o for o in given if o.longs and o.longs[0] == "python"]
        if not rest and not options.get("python") and not command_line:
            rest = self._file_subcommand(table)
        if not rest:
            self._check_unclaimed(level.settable, "TAPSTER_")
        return rest

    def _find_file(self, options: Options) -> ConfigFile | None:
        from tapster.runner._options import install_app_dir

        explicit = options.get("config")
        where = f"--config {show(str(explicit))}"
        if explicit is None and self.config_variable is not None:
            explicit = self.config_variable
            where = f"TAPSTER_CONFIG={show(explicit)}"
        folder = install_app_dir(options.get("app_dir"))
        return find_config(explicit, where, folder)

    def _check_tables(self, table: dict[str, Any]) -> None:
        assert self.file is not None
        for key, value in table.items():
            if not isinstance(value, dict) or key in self.levels[0].settable:
                continue
            if key not in self.names:
                title = self.file.table_title(key)
                raise UsageError(
                    f"{self.file.shown}: {title} is not a subcommand"
                    + _did_you_mean(key, self.names, self.file.table_title)
                )

    def _file_subcommand(self, table: dict[str, Any]) -> list[str]:
        if self.file is None or "subcommand" not in table:
            return []
        name = table["subcommand"]
        where = self.file.where(None, "subcommand")
        if not isinstance(name, str):
            raise UsageError(f"{where}: expected the name of a subcommand, as a string")
        if name not in self.names:
            raise UsageError(
                f"{where}: unknown command {show(name)}" + _did_you_mean(name, self.names)
            )
        self.subcommand_origin = self.file.origin(None, "subcommand")
        return [name]

    # -- a subcommand ----------------------------------------------------------------------

    def subcommand_sources(self, name: str) -> Callable[[Options, Given, list[str]], list[str]]:
        """The hook for the options of subcommand ``name``."""

        def fill(options: Options, given: Given, rest: list[str]) -> list[str]:
            level = Level(options, name)
            self.levels.append(level)
            prefix = env_prefix(name)
            longer = [
                other
                for other in (env_prefix(n) for n in self.names if n != name)
                if other.startswith(prefix)
            ]
            variables = self._claim(level, prefix, longer, strict=True)
            self._apply_variables(level, given, variables)
            table: Any = {}
            if self.file is not None:
                table = self.file.data.get(name, {})
                if not isinstance(table, dict):
                    raise UsageError(
                        f"{self.file.where(None, name)}: expected a table of {name}'s options "
                        f"([{name}])"
                    )
            self._apply_table(level, given, variables, table, name)
            self._check_unclaimed(level.settable, prefix, self.levels[0].settable)
            return rest

        return fill

    # -- the environment -------------------------------------------------------------------

    def _claim(
        self, level: Level, prefix: str, longer: list[str] | None = None, strict: bool = False
    ) -> dict[str, tuple[str, str, bool]]:
        """The variables of ``level``: ``{file key: (variable, value, from a file)}``.

        A variable is the level's when it is ``PREFIX`` + an option's name in capitals
        (``_`` for ``-``), or that + ``_FILE`` for an option that takes a value. With
        ``strict``, every other variable under ``prefix`` (and not under a longer
        prefix of another subcommand, in ``longer``) is an error.
        """
        by_stem = {variable_stem(key): key for key in level.settable}
        claimed: dict[str, tuple[str, str, bool]] = {}
        for variable in sorted(self.unclaimed):
            if not variable.startswith(prefix) or any(variable.startswith(o) for o in longer or ()):
                continue
            stem = variable[len(prefix) :]
            key = by_stem.get(stem)
            from_file = False
            if key is None and stem.endswith("_FILE"):
                key = by_stem.get(stem[:-5])
                from_file = key is not None and level.settable[key].takes_value
                key = key if from_file else None
            if key is None:
                if strict:
                    raise UsageError(
                        f"unknown variable {variable} (no option --{_dashed(stem)} in "
                        f"'tapster {level.name}')"
                        + _did_you_mean(stem, list(by_stem), lambda s: prefix + s)
                    )
                continue
            if key in claimed:
                raise UsageError(f"{claimed[key][0]} and {variable} are both set: choose one")
            claimed[key] = (variable, self.unclaimed.pop(variable), from_file)
        return claimed

    def _apply_variables(
        self, level: Level, given: Given, variables: dict[str, tuple[str, str, bool]]
    ) -> None:
        for key, option in level.settable.items():
            if option in given:
                level.settings[key] = Setting(option, COMMAND_LINE, given[option])
                continue
            if key not in variables:
                continue
            variable, text, from_file = variables[key]
            where = f"{variable}={show(text)}"
            if from_file:
                raws: list[str | None] = list(_secret(text, where, is_repeatable(option)))
            elif not option.takes_value:
                raws = [None] if flag_value(variable, text) else []
            elif is_repeatable(option):
                raws = list(list_value(variable, text))
            else:
                raws = [text]
            origin = f"environment {variable}"
            if from_file:
                origin = f"file {text} (environment {variable})"
            level.settings[key] = Setting(option, origin, raws, from_file, where=where)
            for raw in raws:
                shown = where if from_file or raw is None else f"{variable}={show(raw)}"
                _apply(level.options, option, raw, shown)

    def _check_unclaimed(
        self, own: dict[str, Any], prefix: str, runner: dict[str, Any] | None = None
    ) -> None:
        """Variables left over that no subcommand could claim are mistakes."""
        for variable in sorted(self.unclaimed):
            if any(variable.startswith(env_prefix(name)) for name in self.names):
                continue  # another subcommand's: not this run's business
            names = [variable_stem(k) for k in runner or {}]
            names += [prefix[8:] + variable_stem(k) for k in own]
            raise UsageError(
                f"unknown variable {variable} (no such option)"
                + _did_you_mean(variable[8:], names, lambda s: "TAPSTER_" + s)
            )

    # -- the file --------------------------------------------------------------------------

    def _apply_table(
        self,
        level: Level,
        given: Given,
        variables: dict[str, Any],
        table: dict[str, Any],
        name: str | None,
    ) -> None:
        if self.file is None:
            return
        file = self.file
        found: dict[str, tuple[str, Any, bool]] = {}
        for written, value in table.items():
            key = written.replace("_", "-")
            subcommand = written == "subcommand" or isinstance(value, dict)
            if name is None and subcommand and key not in level.settable:
                continue  # a subcommand's table, or the subcommand's name
            from_file = False
            if key not in level.settable and key.endswith("-file"):
                stem = key.removesuffix("-file")
                from_file = stem in level.settable and level.settable[stem].takes_value
                key = stem if from_file else key
            if key not in level.settable:
                allowed = list(level.settable) + (["subcommand"] if name is None else [])
                raise UsageError(
                    f"{file.where(name, written)}: unknown setting"
                    + (f" for 'tapster {name}'" if name else "")
                    + _did_you_mean(key, allowed)
                )
            if key in found:
                raise UsageError(
                    f"{file.where(name, written)}: {found[key][0]} is set too: choose one"
                )
            found[key] = (written, value, from_file)
        for key, (written, value, from_file) in found.items():
            option = level.settable[key]
            if option in given or key in variables:
                continue
            where = file.where(name, written)
            raws = _file_raws(option, value, where, from_file, file.folder)
            typed = None if from_file else value if isinstance(value, list) else [value]
            origin = file.origin(name, written)
            level.settings[key] = Setting(option, origin, raws, from_file, typed, where=where)
            for raw in raws:
                _apply(level.options, option, raw, where)


def runner_sources(options: Options, given: Given, rest: list[str]) -> list[str]:
    """The runner's hook: skipped for the listing actions, else :meth:`Config.fill_runner`."""
    if any(option.longs and option.longs[0] in _ACTIONS for option in given):
        return rest
    config = Config(dict(os.environ))
    options.config_sources = config  # type: ignore[attr-defined]
    return config.fill_runner(options, given, rest)


def _apply(options: Options, option: Option, raw: str | None, where: str) -> None:
    """Feed ``raw`` to ``option`` as the command line would; errors name ``where``."""
    try:
        options._apply(option, "--" + file_key(option), raw, where)
    except UsageError as error:
        if error.message.startswith(where):
            raise
        raise UsageError(f"{where}: {error.message}") from None


def _file_raws(
    option: Option, value: Any, where: str, from_file: bool, folder: str
) -> list[str | None]:
    """A config file's value as the raw texts of a command line."""
    if from_file:
        if not isinstance(value, str) or not value:
            raise UsageError(f"{where}: expected the path of a file, as a string")
        path = os.path.join(folder, value)
        return list(_secret(path, f"{where} ({show(value)})", is_repeatable(option)))
    if not option.takes_value:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: expected true or false, not {_describe(value)}")
        return [None] if value else []
    if isinstance(value, list):
        if not is_repeatable(option):
            raise UsageError(f"{where}: takes one value, not a list")
        return [_scalar(item, where) for item in value]
    return [_scalar(value, where)]


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UsageError(f"{where}: expected a string or a number, not {_describe(value)}")
    return str(value)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {show(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"a {type(value).__name__}"


def _secret(path: str, where: str, repeatable: bool) -> list[str]:
    """A value kept in a file: its text less the final newline (each line, for a list)."""
    from tapster.runner._files import read_regular

    try:
        text = read_regular(path, MAX_SECRET_SIZE).decode("utf-8")
    except OSError as error:
        raise UsageError(f"{where}: cannot read the file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{where}: the file is not UTF-8 text") from None
    if repeatable:
        return [line for line in text.splitlines() if line.strip()]
    if text.endswith("\n"):
        text = text[:-1].removesuffix("\r")
    return [text]


def _dashed(stem: str) -> str:
    return stem.lower().replace("_", "-")


def _did_you_mean(typed: str, names: list[str], spell: Callable[[str], str] = str) -> str:
    import difflib

    close = difflib.get_close_matches(typed, names, n=3, cutoff=0.6)
    return "; did you mean " + " or ".join(spell(c) for c in close) + "?" if close else ""
