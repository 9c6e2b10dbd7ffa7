"""Split a command line into options and the rest, POSIX style.

Options end at the first argument that is not an option (so everything after a
subcommand name belongs to the subcommand), at ``--``, or at the end. Long
options take ``--name=value`` or ``--name value``; short ones ``-pVALUE`` or
``-p VALUE`` and may be bundled (``-nb``, ``-nbpVALUE``). ``-`` alone is an
argument, not an option.

Long options must be spelled out in full: unique prefixes are refused, because
a prefix that works today breaks the day a plugin or mixin adds an option that
shares it. The error suggests the full name instead.
"""

from __future__ import annotations

from tapster.usage._errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    from tapster.usage._declarations import ClassSpec, Option

    class Apply(Protocol):
        def __call__(self, option: Option, spelled: str, raw: str | None, /) -> None: ...


_LONGEST_SHOWN = 200


def show(text: str) -> str:
    """Quote user input for a one-line message: escaped, and cut in the middle when very long.

    The middle goes, not the end: in a long path the wrong part is usually last.
    """
    if len(text) > _LONGEST_SHOWN:
        half = (_LONGEST_SHOWN - 3) // 2
        return repr(text[:half]) + "..." + repr(text[-half:])
    return repr(text)


def tokenize(spec: ClassSpec, argv: Sequence[str], apply: Apply) -> list[str]:
    """Call ``apply(option, spelling, raw value)`` for each option, left to right.

    Returns the arguments left after the options. An option is applied as soon as
    it is read, so ``--help`` before a mistake shows the help and a mistake
    before ``--help`` is reported.
    """
    count = len(argv)
    index = 0
    while index < count:
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if arg.startswith("--"):
            name, equals, value = arg[2:].partition("=")
            spelled = "--" + name
            option = spec.by_long.get(name.replace("_", "-")) if name else None
            if option is None:
                raise UsageError(_unknown_long(spec, spelled))
            if option.takes_value:
                if not equals:
                    index += 1
                    if index >= count:
                        raise UsageError(f"option {spelled} needs a value")
                    value = argv[index]
                apply(option, spelled, value)
            elif equals:
                raise UsageError(f"option {spelled} takes no value (got {show(arg)})")
            else:
                apply(option, spelled, None)
        elif arg.startswith("-") and arg != "-":
            position = 1
            while position < len(arg):
                letter = arg[position]
                spelled = "-" + letter
                option = spec.by_short.get(letter)
                if option is None:
                    if (
                        len(arg) > 2
                        and position == 1
                        and arg[1:].replace("-", "_") in {n.replace("-", "_") for n in spec.by_long}
                    ):
                        raise UsageError(
                            f"unknown option {show(arg)}; long options take two dashes: -{arg}"
                        )
                    where = f" in {show(arg)}" if len(arg) > 2 else ""
                    raise UsageError(f"unknown option {show(spelled)}{where}")
                if option.takes_value:
                    value = arg[position + 1 :]
                    if not value:
                        index += 1
                        if index >= count:
                            raise UsageError(f"option {spelled} needs a value")
                        value = argv[index]
                    apply(option, spelled, value)
                    break
                apply(option, spelled, None)
                position += 1
        else:
            break
        index += 1
    return list(argv[index:])


def _unknown_long(spec: ClassSpec, spelled: str) -> str:
    message = f"unknown option {show(spelled)}"
    typed = spelled[2:].replace("_", "-")
    if not typed:
        return message
    candidates = sorted(n for n in spec.by_long if n.startswith(typed))
    if not candidates:
        import difflib  # only on this error path

        candidates = difflib.get_close_matches(typed, list(spec.by_long), n=3)
    if candidates:
        message += "; did you mean " + " or ".join("--" + n for n in candidates) + "?"
    return message
