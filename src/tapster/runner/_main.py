"""``tapster``: parse the command line, then hand over to the run path.

Only the options parser is imported here. ``asyncio``, ``logging`` and the
service framework are imported by :mod:`tapster.runner._run`, on the run path,
so that ``tapster --help`` stays fast.
"""

from __future__ import annotations

import gc
import os
import sys

from tapster.runner._options import PluginLoadError, RunnerOptions, StdoutError
from tapster.runner._status import EXIT_FAILURE, EXIT_FORCED, EXIT_OK, EXIT_USAGE
from tapster.usage import UsageError

TYPE_CHECKING = False  # typing and collections.abc cost the help path
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import NoReturn, TextIO

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "command", "main"]


class Outcome:
    """What a command line came to: its exit ``status``, and whether it only asked for
    text (``text_only``: ``--help``, ``--version``; nothing was run)."""

    __slots__ = ("status", "text_only")

    def __init__(self, status: int, *, text_only: bool = False) -> None:
        self.status = status
        self.text_only = text_only


def _say(message: str) -> None:
    sys.stderr.write(f"tapster: {message}\n")
    sys.stderr.flush()


def _usage_error(error: UsageError, options: RunnerOptions) -> int:
    _release_early_records()  # warnings first, the error last
    message = error.message
    where = error.options if error.options is not None else options
    if where is options and error.unknown_command is not None:
        message = _unknown_command(options, error.unknown_command)
    elif options.config_sources is not None:  # a value the environment or a file gave
        message = options.config_sources.name_sources(error)
    _say(f"error: {message}")
    command = where.command_path() if hasattr(where, "command_path") else "tapster"
    sys.stderr.write(f"Run '{command} --help' for usage.\n")
    return EXIT_USAGE


def _unknown_command(options: RunnerOptions, typed: str) -> str:
    """The runner's own words for a subcommand that no plugin provides."""
    import difflib

    names = [str(row[0]) for row in options.subcommands]
    close = difflib.get_close_matches(typed, names, n=3, cutoff=0.6)
    text = f"unknown command {typed!r}"
    if close:
        return text + "; did you mean " + " or ".join(close) + "?"
    if names:
        return text + " (commands: " + ", ".join(names) + ")"
    return text + " (no service plugins found; see 'tapster --plugins')"


def command() -> NoReturn:
    """The ``tapster`` program (its launcher, ``python -m tapster``): :func:`main`, then exit.

    When the command line only asked for text (``--help``, ``--version``), stdout
    and stderr are flushed here; one that cannot be (a closed pipe) gives status
    1, like a failed write of the help, and is pointed at ``/dev/null`` so that
    the exit does not print an "Exception ignored" traceback. Then, if no plugin
    code ran, the process leaves with ``os._exit``: nothing is left to close or
    to run (no plugin module, no logging, no thread, no atexit handler), and the
    interpreter's teardown would free the whole plugin listing object by object
    (9 M instructions with a thousand plugins, a ninth of the run). If a scan
    imported plugin modules, the exit is the normal one, so that whatever they
    registered (atexit handlers, threads) runs; only the final garbage collection
    is spared its walk over every module, class and function they made
    (``gc.freeze``: they are freed all the same, as the modules are cleared),
    8 % of a cold ``--help`` with a thousand plugins. Every other path exits the
    normal way.
    """
    # Parsing makes many objects that live until the exit and frees few: a
    # collection there walks them all for nothing (2.5 % of ``tapster --help``).
    # The collector is back on before a service runs (``before_run``).
    gc.disable()
    outcome = _outcome(sys.argv[1:], before_run=gc.enable)
    status = outcome.status
    if outcome.text_only:
        status = _flushed(status)
        if "tapster.plugin._load" not in sys.modules:
            os._exit(status)
        gc.freeze()
    sys.exit(status)


def _flushed(status: int) -> int:
    """``status``, or 1 if stdout or stderr cannot be flushed (it then writes to /dev/null)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or EXIT_FAILURE
            _to_devnull(stream)
    return status


def _to_devnull(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at ``/dev/null``: what is left in it goes nowhere."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, stream.fileno())
        finally:
            os.close(null)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tapster`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    return _outcome(sys.argv[1:] if argv is None else list(argv)).status


def _outcome(args: list[str], before_run: Callable[[], None] | None = None) -> Outcome:
    """:func:`main`'s work: parse ``args`` and act on them; errors become a status.

    ``before_run`` is called just before a service runs (not for text-only or
    usage-error outcomes): :func:`command` turns the collector back on there.
    """
    try:
        return _main(args, before_run)
    except KeyboardInterrupt:
        return Outcome(EXIT_FORCED)
    except Exception as exc:
        # A bug, not a user error: still one line, the traceback only when asked for.
        if _debug_requested(args):
            import traceback

            traceback.print_exc()
        _say(
            f"internal error: {type(exc).__name__}: {exc} "
            "(run with --log-level debug to see the traceback)"
        )
        return Outcome(EXIT_FAILURE)


def _debug_requested(args: list[str]) -> bool:
    for index, arg in enumerate(args):
        if arg == "--log-level=debug" or (
            arg == "--log-level" and args[index + 1 : index + 2] == ["debug"]
        ):
            return True
    return False


def _main(args: list[str], before_run: Callable[[], None] | None) -> Outcome:
    try:
        return _parse_and_run(args, before_run)
    finally:
        _release_early_records()


def _release_early_records() -> None:
    """Records a plugin logged that no configured log took: warnings go to stderr.

    (The run path replays them into the real log; this covers the exits before
    it, such as a usage error or a subcommand's ``--help``.)
    """
    logs = sys.modules.get("tapster.runner._logs")
    if logs is None:
        return  # no plugin code ran, nothing was captured
    root = logs.logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logs.EarlyRecords):
            logs.show_on_stderr(handler.finish(), logs.logging.WARNING)


def _parse_and_run(args: list[str], before_run: Callable[[], None] | None) -> Outcome:
    options = RunnerOptions()
    try:
        options.parse_options(args)
    except UsageError as error:
        return Outcome(_usage_error(error, options))
    except PluginLoadError as error:
        _release_early_records()
        _say(str(error))
        return Outcome(EXIT_FAILURE)
    except StdoutError as error:
        if not error.broken_pipe and sys.stderr is not None:  # a closed pipe: nothing to say
            _say(f"cannot write to standard output: {error}")
        return Outcome(EXIT_FAILURE, text_only=True)
    except SystemExit as done:  # --help, --version, --help-loops
        return Outcome(done.code if isinstance(done.code, int) else EXIT_OK, text_only=True)
    if options["plugins"]:
        return Outcome(_list_plugins())
    if options["rebuild_plugin_cache"]:
        return Outcome(_rebuild_caches())
    if options["completion"]:
        return Outcome(_completion(options, options["completion"]))
    if options["print_config"]:
        from tapster.config._print import print_config

        return Outcome(print_config(options), text_only=True)
    if options["reload"] and "TAPSTER_RELOADED" not in os.environ:
        from tapster.runner._reload import reload_command

        return Outcome(reload_command(options, args))
    if options.bare:
        sys.stderr.write(options.help_text())
        _say("error: no subcommand given (choose one of the commands above, or -y FILE.tac)")
        return Outcome(EXIT_USAGE)
    from tapster.runner._run import Runner

    runner = Runner(
        options.settings(),
        maker=options.maker,
        sub_options=options.sub_options,
        tapname=options.subcommand,
        argv=args,
    )
    if before_run is not None:
        before_run()
    return Outcome(runner.run())


def _list_plugins() -> int:
    from tapster.plugin import plugin_report

    report = plugin_report()
    sys.stdout.write(report.format())
    return int(report.exit_status)


def _rebuild_caches() -> int:
    from tapster.plugin import plugin_problems, rebuild_caches

    try:
        written = rebuild_caches()
    except OSError as exc:
        _say(f"cannot rebuild the plugin caches: {exc.strerror or exc}")
        return EXIT_FAILURE
    for path in written:
        print(f"rebuilt {path}")
    broken = [problem for problem in plugin_problems() if problem.broken]
    for problem in broken:
        _say(f"broken plugin: {problem.message}")
    return EXIT_FAILURE if broken else EXIT_OK


def _completion(options: RunnerOptions, shell: str) -> int:
    from tapster.usage import completion_script

    # A fresh parser, so the script describes every option and every plugin.
    sys.stdout.write(completion_script(shell, RunnerOptions(), "tapster"))
    return EXIT_OK
