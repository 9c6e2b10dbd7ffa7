"""Shell completion generated from the same declarations the parser reads.

:func:`completion_data` walks an :class:`Options` instance (and, through the
subcommand factories, every subcommand) into plain data; :func:`bash_completion`,
:func:`zsh_completion` and :func:`fish_completion` turn that data into a script
for the shell. The value of an option is completed from its coercer's (or its
handler's) ``completion`` attribute: ``"file"``, ``"dir"`` or a tuple of choices.

Unlike parsing, which calls only the chosen subcommand's factory, generating
completion data calls every factory; a factory that fails is listed with no
options of its own rather than breaking the script.
"""

from __future__ import annotations

from tapster.usage._declarations import class_spec
from tapster.usage._options import Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypedDict

    class OptionData(TypedDict):
        """One option: its spellings, whether it takes a value and how to complete it."""

        long: list[str]
        short: list[str]
        takes_value: bool
        complete: str | list[str] | None
        repeatable: bool
        doc: str

    class CommandData(TypedDict):
        """A command: its options and its subcommands (each a CommandData too)."""

        name: str
        short: str | None
        doc: str
        options: list[OptionData]
        commands: list[CommandData]


def _first_line(text: object) -> str:
    if not isinstance(text, str):
        return ""
    stripped = text.strip()
    return " ".join(stripped.splitlines()[0].split()) if stripped else ""


def _hint(option: Any, options: Options) -> str | list[str] | None:
    sources: list[object] = []
    if option.method is not None:
        sources.append(getattr(type(options), option.method, None))
    sources.append(option.coerce)
    for source in sources:
        hint = getattr(source, "completion", None)
        if isinstance(hint, str):
            return hint
        if isinstance(hint, tuple | list):
            return [str(h) for h in hint]
    return None


def completion_data(
    options: Options | type[Options], program: str | None = None, *, _depth: int = 0
) -> CommandData:
    """Describe ``options`` and its subcommands for shell completion, as plain data.

    ``program`` names the command (default: the running program's name).
    """
    if isinstance(options, type):
        options = options()
    spec = class_spec(type(options))
    described: list[OptionData] = []
    for option in spec.options:
        described.append(
            {
                "long": list(option.longs),
                "short": list(option.shorts),
                "takes_value": option.takes_value,
                "complete": _hint(option, options) if option.takes_value else None,
                "repeatable": option.method is not None,
                "doc": option.doc,
            }
        )
    commands: list[CommandData] = []
    for row in options.subcommands or ():
        name, short, factory = str(row[0]), row[1] or None, row[2]
        doc = _first_line(row[3] if len(row) > 3 else "")
        child: CommandData = {
            "name": name,
            "short": short,
            "doc": doc,
            "options": [],
            "commands": [],
        }
        if _depth < 8:
            try:
                sub = factory()
                if isinstance(sub, Options):
                    sub.parent = options
                    options.subcommand = name
                    nested = completion_data(sub, name, _depth=_depth + 1)
                    child["options"] = nested["options"]
                    child["commands"] = nested["commands"]
            except Exception:  # noqa: S110 - a broken plugin must not break completion
                pass
            finally:
                options.subcommand = None
        commands.append(child)
    return {
        "name": program or options.command_path(),
        "short": None,
        "doc": _first_line(options.long_description),
        "options": described,
        "commands": commands,
    }


def _data(source: Options | type[Options] | CommandData, program: str | None) -> CommandData:
    if isinstance(source, dict):
        data = source
        if program:
            data = {**data, "name": program}
        return data
    return completion_data(source, program)


def _identifier(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _walk(
    data: CommandData, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], CommandData]]:
    found = [(path, data)]
    for command in data["commands"]:
        found += _walk(command, (*path, command["name"]))
    return found


# -- bash ----------------------------------------------------------------------------------


def bash_completion(
    source: Options | type[Options] | CommandData, program: str | None = None
) -> str:
    """A bash script: ``source`` it, or save it in bash-completion's directory."""
    data = _data(source, program)
    prog = data["name"]
    fn = "_" + _identifier(prog) + "_complete"
    words: list[str] = []
    values: list[str] = []
    commands: list[str] = []
    for path, node in _walk(data):
        context = " ".join(path)
        spellings = []
        for option in node["options"]:
            names = [f"--{n}" for n in option["long"]] + [f"-{s}" for s in option["short"]]
            spellings += [f"--{n}=" if option["takes_value"] else f"--{n}" for n in option["long"]]
            spellings += [f"-{s}" for s in option["short"]]
            if option["takes_value"]:
                hint = option["complete"]
                kind = (
                    "choices " + " ".join(hint)
                    if isinstance(hint, list)
                    else (hint if hint in ("file", "dir") else "any")
                )
                patterns = "|".join(_sh_quote(f"{context}:{n}") for n in names)
                values.append(f"        {patterns}) echo {_sh_quote(kind)} ;;")
        for command in node["commands"]:
            spellings.append(command["name"])
            keys = [command["name"]] + ([command["short"]] if command["short"] else [])
            patterns = "|".join(_sh_quote(f"{context}:{k}") for k in keys)
            commands.append(f"        {patterns}) echo {_sh_quote(command['name'])} ;;")
        words.append(f"        {_sh_quote(context)}) echo {_sh_quote(' '.join(spellings))} ;;")
    nl = "\n"
    return f"""# bash completion for {prog}; generated from its option declarations.
{fn}_words() {{
    case "$1" in
{nl.join(words)}
    esac
}}
{fn}_value() {{
    case "$1:$2" in
{nl.join(values)}
        *) echo none ;;
    esac
}}
{fn}_command() {{
    case "$1:$2" in
{nl.join(commands)}
    esac
}}
{fn}_short() {{
    # The option in a short bundle (-nbp) whose value is the next word, if any.
    local rest="${{2#-}}" kind
    while [ -n "$rest" ]; do
        kind="$({fn}_value "$1" "-${{rest:0:1}}")"
        if [ "$kind" != none ]; then
            [ "${{#rest}}" -eq 1 ] && echo "-$rest"
            return 0
        fi
        rest="${{rest:1}}"
    done
}}
{fn}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" context="" word kind sub i=1 done_options=""
    local opt=""
    while [ "$i" -lt "$COMP_CWORD" ]; do
        word="${{COMP_WORDS[i]}}"
        if [ -n "$done_options" ]; then
            :
        elif [ "$word" = "--" ]; then
            done_options=1
        elif [ "${{COMP_WORDS[i+1]}}" = "=" ]; then
            i=$((i + 2))
        elif [[ "$word" == --*=* ]]; then
            :
        elif [[ "$word" == -?* ]]; then
            if [[ "$word" == --* ]]; then
                opt="$word"
            else
                opt="$({fn}_short "$context" "$word")"
            fi
            if [ -n "$opt" ] && [ "$({fn}_value "$context" "$opt")" != none ]; then
                i=$((i + 1))
            fi
        else
            sub="$({fn}_command "$context" "$word")"
            if [ -n "$sub" ]; then
                context="${{context:+$context }}$sub"
            else
                done_options=1
            fi
        fi
        i=$((i + 1))
    done
    COMPREPLY=()
    local prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    opt=""
    if [ "$cur" = "=" ]; then
        opt="$prev"; cur=""
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 2 ]; then
        opt="${{COMP_WORDS[COMP_CWORD-2]}}"
    elif [ -z "$done_options" ] && [[ "$prev" == -?* ]] && [ "$COMP_CWORD" -gt 1 ]; then
        if [[ "$prev" == --* ]]; then opt="$prev"; else opt="$({fn}_short "$context" "$prev")"; fi
    fi
    if [ -n "$opt" ]; then
        kind="$({fn}_value "$context" "$opt")"
        case "$kind" in
            none) ;;
            file) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
            dir) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
            choices\\ *) COMPREPLY=($(compgen -W "${{kind#choices }}" -- "$cur")); return 0 ;;
            *) return 0 ;;
        esac
    fi
    if [ -z "$done_options" ]; then
        COMPREPLY=($(compgen -W "$({fn}_words "$context")" -- "$cur"))
        if [ "${{#COMPREPLY[@]}}" -eq 1 ] && [[ "${{COMPREPLY[0]}}" == *= ]]; then
            compopt -o nospace 2>/dev/null
        fi
    fi
    return 0
}}
complete -o default -F {fn} {_sh_quote(prog)}
"""


# -- zsh -----------------------------------------------------------------------------------


def _zsh_escape(text: str) -> str:
    """Escape a description for an ``_arguments`` spec: brackets and colons."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def _zsh_action(option: OptionData) -> str:
    hint = option["complete"]
    if isinstance(hint, list):
        return "(" + " ".join(h.replace(" ", "\\ ").replace(")", "\\)") for h in hint) + ")"
    if hint == "file":
        return "_files"
    if hint == "dir":
        return "_files -/"
    return " "


def zsh_completion(
    source: Options | type[Options] | CommandData, program: str | None = None
) -> str:
    """A zsh script: save it as ``_tapster`` in a directory on ``$fpath``."""
    data = _data(source, program)
    prog = data["name"]
    base = "_" + _identifier(prog)
    functions: list[str] = []
    for path, node in _walk(data):
        fn = base + "".join("__" + _identifier(p) for p in path)
        specs: list[str] = []
        for option in node["options"]:
            names = [f"-{s}" for s in option["short"]] + [f"--{n}" for n in option["long"]]
            exclusive = "" if option["repeatable"] else "(" + " ".join(names) + ")"
            star = "*" if option["repeatable"] else ""
            doc = _zsh_escape(option["doc"])
            for name in names:
                suffix = ""
                if option["takes_value"]:
                    suffix = "=" if name.startswith("--") else "+"
                spec = f"{exclusive}{star}{name}{suffix}[{doc}]"
                if option["takes_value"]:
                    metavar = (option["long"] or option["short"])[0].upper().replace("-", "_")
                    spec += f":{metavar.lower()}:{_zsh_action(option)}"
                specs.append("        " + _sh_quote(spec) + " \\")
        body = [f"{fn}() {{"]
        if node["commands"]:
            body += [
                '    local curcontext="$curcontext" state line',
                "    typeset -A opt_args",
                "    _arguments -s -S -C \\",
                *specs,
                "        ': :->command' \\",
                "        '*:: :->args'",
                "    case $state in",
                "    command)",
                "        local -a commands",
                "        commands=(",
            ]
            for command in node["commands"]:
                for key in [command["name"]] + ([command["short"]] if command["short"] else []):
                    item = key.replace(":", "\\:") + ":" + command["doc"]
                    body.append("            " + _sh_quote(item))
            body += [
                "        )",
                "        _describe -t commands command commands",
                "        ;;",
                "    args)",
                "        case $words[1] in",
            ]
            for command in node["commands"]:
                keys = [command["name"]] + ([command["short"]] if command["short"] else [])
                child = fn + "__" + _identifier(command["name"])
                body.append(f"        {'|'.join(_sh_quote(k) for k in keys)}) {child} ;;")
            body += ["        *) _files ;;", "        esac", "        ;;", "    esac"]
        else:
            body += ["    _arguments -s -S \\", *specs, "        '*:file:_files'"]
        body.append("}")
        functions.append("\n".join(body))
    return (
        f"#compdef {prog}\n# zsh completion for {prog}; generated from its option declarations.\n\n"
        + "\n\n".join(functions)
        + f'\n\n{base} "$@"\n'
    )


# -- fish ----------------------------------------------------------------------------------


def fish_completion(
    source: Options | type[Options] | CommandData, program: str | None = None
) -> str:
    """A fish script: save it as ``~/.config/fish/completions/tapster.fish``."""
    data = _data(source, program)
    prog = data["name"]
    lines = [f"# fish completion for {prog}; generated from its option declarations."]
    lines.append(f"complete -c {_fish_quote(prog)} -e")
    for path, node in _walk(data):
        aliases = _aliases(data, path)
        sub_names = [c["name"] for c in node["commands"]] + [
            c["short"] for c in node["commands"] if c["short"]
        ]
        if path:
            seen = "; and ".join(
                "__fish_seen_subcommand_from " + " ".join(_fish_word(n) for n in names)
                for names in aliases
            )
            here = seen
            if sub_names:
                here += "; and not __fish_seen_subcommand_from " + " ".join(
                    _fish_word(n) for n in sub_names
                )
        else:
            here = "__fish_use_subcommand"
        condition = f"-n {_fish_quote(here)}"
        for option in node["options"]:
            parts = [f"complete -c {_fish_quote(prog)}", condition]
            parts += [f"-s {_fish_quote(s)}" for s in option["short"]]
            parts += [f"-l {_fish_quote(n)}" for n in option["long"]]
            if option["takes_value"]:
                hint = option["complete"]
                if isinstance(hint, list):
                    parts.append("-x -a " + _fish_quote(" ".join(hint)))
                elif hint == "dir":
                    parts.append("-x -a '(__fish_complete_directories)'")
                elif hint == "file":
                    parts.append("-r -F")
                else:
                    parts.append("-r")
            if option["doc"]:
                parts.append("-d " + _fish_quote(option["doc"]))
            lines.append(" ".join(parts))
        for command in node["commands"]:
            parts = [f"complete -c {_fish_quote(prog)}", condition, "-f"]
            parts.append("-a " + _fish_quote(command["name"]))
            if command["doc"]:
                parts.append("-d " + _fish_quote(command["doc"]))
            lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


_SCRIPTS: dict[str, Callable[[Options | type[Options] | CommandData, str | None], str]] = {
    "bash": bash_completion,
    "zsh": zsh_completion,
    "fish": fish_completion,
}

SHELLS = tuple(_SCRIPTS)


def completion_script(
    shell: str, source: Options | type[Options] | CommandData, program: str | None = None
) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    try:
        generate = _SCRIPTS[shell]
    except KeyError:
        raise ValueError(
            f"no completion for shell {shell!r}; use one of: bash, zsh, fish"
        ) from None
    return generate(source, program)


def _aliases(data: CommandData, path: tuple[str, ...]) -> list[list[str]]:
    """For each command on ``path``: its name and short form."""
    found: list[list[str]] = []
    node = data
    for name in path:
        node = next(c for c in node["commands"] if c["name"] == name)
        found.append([name] + ([node["short"]] if node["short"] else []))
    return found


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_word(word: str) -> str:
    """A command name made safe inside a single-quoted fish condition."""
    return "".join(c for c in word if c.isalnum() or c in "_.-+@")
