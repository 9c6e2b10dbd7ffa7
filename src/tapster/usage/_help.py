"""Build the ``--help`` text from the same declarations the parser reads.

Layout: the ``Usage:`` line, the long description, the options sorted by name
(short forms first, then long ones, ``=METAVAR`` for a value), each followed by
its doc, the coercer's ``coerce_doc``, ``[default: X]`` and, when the options say
(``_tapster_variable``), ``[env: NAME]``, then the commands
with the first line of their doc. Everything is wrapped to the terminal width
(``COLUMNS`` wins, as with :func:`shutil.get_terminal_size`).
"""

from __future__ import annotations

import os
import sys

from tapster.usage._declarations import PARAMETER, class_spec, positional_parameters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from tapster.usage._declarations import Option
    from tapster.usage._options import Options

_DEFAULT_WIDTH = 80
_NARROWEST = 40
_WIDEST_LABEL = 30
_GLUE = "\x00"  # a space that wrapping must not break


def terminal_width() -> int:
    """Columns to wrap help to: ``$COLUMNS``, else the terminal's, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return max(int(columns), _NARROWEST)
    try:
        size = os.get_terminal_size(sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return _DEFAULT_WIDTH
    return max(size.columns, _NARROWEST) if size.columns > 0 else _DEFAULT_WIDTH


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap; a word longer than ``width`` keeps a line to itself."""
    words = text.split()
    joined = " ".join(words)
    if len(joined) <= width:  # the usual case for a one-line doc: no loop at all
        return [joined.replace(_GLUE, " ")] if joined else []
    lines: list[str] = []
    line = ""
    for word in words:
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return [line.replace(_GLUE, " ") for line in lines]


def clean_doc(text: str) -> list[str]:
    """Split a docstring-like text into paragraphs, dedented.

    A paragraph whose lines are indented further than the text is kept verbatim
    (examples, tables); others are joined into one line for wrapping. Returns
    the paragraphs; verbatim ones start with a newline marker.
    """
    lines = text.expandtabs().splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return []
    first, rest = lines[0].strip(), lines[1:]
    margins = [len(line) - len(line.lstrip()) for line in rest if line.strip()]
    margin = min(margins) if margins else 0
    lines = [first, *(line[margin:].rstrip() for line in rest)]
    paragraphs: list[str] = []
    block: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            block.append(line)
            continue
        if block:
            if all(b.startswith(" ") for b in block):
                paragraphs.append("\n" + "\n".join(block))
            else:
                paragraphs.append(" ".join(b.strip() for b in block))
            block = []
    return paragraphs


def synopsis(options: Options) -> str:
    """The ``Usage:`` line of ``options``."""
    return "Usage: " + _synopsis_body(options)


def _synopsis_body(options: Options) -> str:
    declared = _declared(options)
    parent = options.parent
    if declared is None:
        return _head(options) + _arguments_tail(options)
    if parent is None or parent.subcommand is None or _is_absolute(declared, options):
        return declared
    # Twisted's convention: a subcommand's own synopsis follows its parents'.
    return f"{_head(parent)} {parent.subcommand} {declared}"


def _declared(options: Options) -> str | None:
    text = (options.synopsis or "").strip()
    if text.startswith("Usage:"):
        text = text[len("Usage:") :].strip()
    return text or None


def _is_absolute(declared: str, options: Options) -> bool:
    """Whether a subcommand's declared synopsis already names the program."""
    if (options.synopsis or "").lstrip().startswith("Usage:"):
        return True
    root = options
    while root.parent is not None:
        root = root.parent
    return declared.split(maxsplit=1)[0] == root.command_path().split()[0]


def _head(options: Options) -> str:
    """The command with its parents' options: ``tapster [options] web [options]``.

    Declared synopses of the parents are left out: they describe the parent's
    whole usage, command placeholder included.
    """
    parent = options.parent
    if parent is not None and parent.subcommand is not None:
        return f"{_head(parent)} {parent.subcommand} [options]"
    return f"{options.command_path()} [options]"


def _arguments_tail(options: Options) -> str:
    from tapster.usage._options import Options as Base

    if options.subcommands or ():
        if options.default_subcommand is None:
            return " <command> [options]"
        return " [command [options]]"
    function = type(options).parse_args
    parameters = positional_parameters(function)
    if function is Base.parse_args or parameters is None:
        return ""
    names, optional, star = parameters
    required = len(names) - optional
    parts = [n.upper() for n in names[:required]] + [f"[{n.upper()}]" for n in names[required:]]
    if star is not None:
        parts.append(f"[{star.upper()}...]")
    return "".join(" " + p for p in parts)


def option_label(option: Option) -> str:
    """``-p, --port=PORT``, ``    --help``, ``-x X``."""
    names = [f"-{s}" for s in option.shorts] + [f"--{n}" for n in option.longs]
    label = ", ".join(names)
    if option.takes_value:
        label += f"={option.metavar}" if option.longs else f" {option.metavar}"
    return label if option.shorts else "    " + label


def option_doc(option: Option, variable: str | None = None) -> str:
    """The doc, the coercer's ``coerce_doc``, the default and the ``variable``, as one text."""
    parts = [option.doc] if option.doc else []
    coerce_doc = getattr(option.coerce, "coerce_doc", None) if option.coerce else None
    if isinstance(coerce_doc, str) and coerce_doc.strip():
        parts.append(" ".join(coerce_doc.split()))
    if option.kind == PARAMETER and option.default is not None:
        shown = str(option.default)
        parts.append(f"[default:{_GLUE}{shown if shown else chr(34) * 2}]")
    if variable:
        parts.append(f"[env:{_GLUE}{variable}]")
    return " ".join(parts)


def _table(rows: list[tuple[str, str]], width: int) -> list[str]:
    """Two columns: labels indented by 2, docs aligned and wrapped.

    This runs once per listed command (a thousand plugins make a thousand
    rows), so the common row, a short label and a doc that fits on one line,
    takes no wrapping loop and no padding call.
    """
    if not rows:
        return []
    cap = min(_WIDEST_LABEL, width // 2 - 4)
    longest = -1
    for label, _ in rows:
        n = len(label)
        if longest < n <= cap:
            longest = n
    column = 2 + (longest if longest >= 0 else cap) + 2
    room = max(width - column, 20)
    pad = " " * column
    label_width = column - 2
    out: list[str] = []
    append = out.append
    for label, doc in rows:
        fits = len(label) + 2 <= label_width
        if fits and doc and len(doc) <= room and doc.isprintable() and "  " not in doc:
            # One line: what wrap() would return, without splitting the words
            # (a printable doc holds no tab, newline or glue character).
            append("  " + label.ljust(label_width) + doc.strip())
            continue
        doc_lines = wrap(doc, room) if doc else []
        first = "  " + label
        if doc_lines and fits:
            append(first.ljust(column) + doc_lines[0])
            del doc_lines[0]
        else:
            append(first)
        out.extend(pad + line for line in doc_lines)
    return out


def _first_lines(raw_docs: Sequence[object]) -> tuple[list[str], bool]:
    """The commands' docs as listed (stripped, and the first line of one with several),
    and whether every one of them is printable (so none had several lines)."""
    try:
        docs = list(map(str.strip, raw_docs))  # type: ignore[arg-type]
    except TypeError:  # not all strings (a row's doc may be None)
        docs = [str(raw).strip() if raw else "" for raw in raw_docs]
    if " ".join(docs).isprintable():
        return docs, True
    return [doc.splitlines()[0] if doc and not doc.isprintable() else doc for doc in docs], False


def _command_table(labels: list[str], raw_docs: Sequence[object], width: int) -> list[str]:
    """:func:`_table` of the labels and the first lines of the docs, made in one piece
    when every row is simple.

    Simple, as in :func:`_table`'s shortcut: every label fits its column and every
    doc fits on one line and needs no wrapping. That is checked and done a column at
    a time (``map``, ``max``, slices and ``str.join``, in C), which matters for the
    runner's thousand commands; any other table goes row by row through :func:`_table`.
    """
    docs, printable = _first_lines(raw_docs)
    cap = min(_WIDEST_LABEL, width // 2 - 4)
    longest = max(map(len, labels), default=0)
    column = 2 + longest + 2
    if (
        printable  # and so stripped: the first lines of several would not be
        and 0 < longest <= cap
        and all(docs)
        and max(map(len, docs)) <= max(width - column, 20)
        and "  " not in "\n".join(docs)
    ):
        count = len(labels)
        parts = [""] * (3 * count)  # label, doc, line break, label, doc, ...
        parts[0::3] = map(str.ljust, labels, [column - 2] * count)
        parts[1::3] = docs
        parts[2::3] = ["\n  "] * count
        return ["  " + "".join(parts[:-1])]
    return _table(list(zip(labels, docs, strict=True)), width)


def help_text(
    options: Options,
    width: int | None = None,
    commands: tuple[list[str], Sequence[object]] | None = None,
) -> str:
    """The whole help text for ``options``, ending with a newline.

    ``commands``, when given, are the names and docs to list instead of the
    rows of ``options.subcommands`` (which need an options factory each: the
    runner lists a thousand plugins without making one).
    """
    if width is None:
        width = terminal_width()
    head, *more = wrap(_synopsis_body(options), width - 7) or [""]
    out = ["Usage: " + head, *("       " + line for line in more)]

    description = options.long_description
    if description:
        for paragraph in clean_doc(description):
            out.append("")
            if paragraph.startswith("\n"):
                out.extend(paragraph[1:].splitlines())
            else:
                out.extend(wrap(paragraph, width))

    spec = class_spec(type(options))
    variable = options._tapster_variable
    if variable is None:
        rows = [(option_label(o), option_doc(o)) for o in spec.options]
    else:
        rows = [(option_label(o), option_doc(o, variable(o))) for o in spec.options]
    if rows:
        out += ["", "Options:"]
        out += _table(rows, width)

    if commands is None:
        declared = options.subcommands or ()
        commands = (
            [f"{row[0]} ({row[1]})" if row[1] else str(row[0]) for row in declared],
            [row[3] if len(row) > 3 else "" for row in declared],
        )
    labels, raw_docs = commands
    if labels:
        heading = "Commands:"
        if options.default_subcommand is not None:
            heading = f"Commands (default: {options.default_subcommand}):"
        out += ["", heading]
        out += _command_table(labels, raw_docs, width)
    return "\n".join(out) + "\n"
