"""The runner's command line: runner options, then a subcommand from the plugins.

``tapster --help`` must stay fast and import no plugin, no ``asyncio`` and no
``logging``: the subcommand table is a property built from
``tapster.plugin.describe_plugins("tapster.service.ServiceMaker")`` (the plugin
cache), and each row's factory loads its plugin only when that subcommand is
chosen. Parsing has no side effects beyond putting ``--app-dir`` on
``sys.path`` (needed before plugins can be found at all).
"""

from __future__ import annotations

import os
import sys

from tapster import __version__
from tapster._env_names import variable_namer
from tapster._ids import group_id, user_id
from tapster.usage import Options, UsageError, choice, documented, existing_dir, octal_mode

TYPE_CHECKING = False  # importing typing costs the help path a few ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from tapster.runner._settings import RunSettings

__all__ = ["PluginLoadError", "RunnerOptions", "StdoutError", "install_app_dir"]

SERVICE_MAKER_KIND = "tapster.service.ServiceMaker"

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class PluginLoadError(Exception):
    """The chosen subcommand's plugin cannot be imported or is not a service maker."""


class StdoutError(Exception):
    """``--help`` or ``--version`` cannot write its text (a closed pipe or stdout, a full disk)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error.strerror or error))
        self.broken_pipe = isinstance(error, BrokenPipeError)


@documented("One of: debug, info, warning, error, critical.", completion=tuple(_LEVELS))
def _log_level(value: str) -> str:
    if value.lower() not in _LEVELS:
        raise ValueError("expected one of: debug, info, warning, error, critical")
    return value.lower()


def _plain_number(text: str, expected: str, fraction: bool = False) -> str:
    """``text`` stripped, if it is ASCII digits (with one ``.`` when ``fraction``).

    ``int()`` and ``float()`` accept more (``1_000``, other scripts' digits,
    ``inf``, exponents) and explain refusals in Python's words; these options
    get plain numbers and an error saying what was expected.
    """
    stripped = text.strip()
    digits = stripped.replace(".", "", 1) if fraction else stripped
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"expected {expected}")
    if len(digits.lstrip("0")) > 18:
        raise ValueError(f"that number is too large (expected {expected})")
    return stripped


@documented("A number of seconds, e.g. 30 or 2.5.", metavar="SECONDS")
def _seconds(value: str) -> float:
    return float(_plain_number(value, "a number of seconds, 0 or more (e.g. 30 or 2.5)", True))


@documented("A whole number, 0 or more.", metavar="N")
def _count(value: str) -> int:
    return int(_plain_number(value, "a whole number, 0 or more"))


@documented("A size in bytes.", metavar="BYTES")
def _size(value: str) -> int:
    expected = "a whole number of bytes, 1 or more"
    number = int(_plain_number(value, expected))
    if number <= 0:
        raise ValueError(f"expected {expected}")
    return number


@documented("A whole number, 1 or more.", metavar="N")
def _workers(value: str) -> int:
    number = int(_plain_number(value, "a whole number of workers, 1 or more"))
    if number < 1:
        raise ValueError("expected a whole number of workers, 1 or more")
    return number


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@documented("Bytes, or with a unit: 512M, 2G (K, M, G are powers of 1024).", metavar="SIZE")
def _memory(value: str) -> int:
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in ("K", "M", "G") else ""
    expected = "a size such as 512M or 2G, more than 0"
    number = int(_plain_number(text[: len(text) - len(unit)], expected)) * _SIZE_UNITS[unit]
    if number <= 0:
        raise ValueError(f"expected {expected}")
    return number


@documented(None, completion="file", metavar="FILE")
def _file(value: str) -> str:
    """A path, kept as typed (it is resolved against the run directory later)."""
    return value


@documented(None, completion="dir", metavar="DIR")
def _dir(value: str) -> str:
    """A directory path, kept as typed."""
    return value


# The id lookups live in tapster._ids, shared with the run path: the help
# text's words and placeholders belong to this command line, so they go on
# wrappers of ours rather than on those functions.
@documented("A user name or number.", metavar="USER")
def _user(value: str) -> int:
    return user_id(value)


@documented("A group name or number.", metavar="GROUP")
def _group(value: str) -> int:
    return group_id(value)


@documented(
    "An endpoint: tcp:9100:interface=127.0.0.1, unix:/run/app/admin.sock:mode=600, ...",
    metavar="ENDPOINT",
)
def _admin_endpoint(value: str) -> str:
    from tapster.endpoints import EndpointError, server_from_string  # only when given

    try:
        server_from_string(value)
    except EndpointError as exc:
        raise ValueError(str(exc)) from None
    return value


@documented("auto, asyncio, uvloop or module:factory.", ("auto", "asyncio", "uvloop"), "LOOP")
def _loop(value: str) -> str:
    from tapster.runner import _loops  # here: --help needs no loop module

    return _loops.check_loop_spec(value)


def _show(text: str) -> NoReturn:
    """Write ``text`` to stdout and exit 0; :class:`StdoutError` if it cannot be written."""
    out = sys.stdout
    try:
        if out is None:
            raise OSError("it is closed")
        out.write(text)
        out.flush()
    except OSError as error:
        raise StdoutError(error) from None
    raise SystemExit(0)


def install_app_dir(directory: str | None) -> str | None:
    """Put ``directory`` first on ``sys.path`` so its packages and plugins are found.

    First, as ``python -m`` puts the current directory first: the project being
    developed must win over an installed copy of itself. Runs before anything
    imports ``tapster.plugins`` (which extends its ``__path__`` from
    ``sys.path`` at import time); if it was imported already, its ``__path__``
    gets the folder too.

    ``None`` means the current directory, except when anyone may write to it
    (``/tmp`` and the like): there, a stray ``asyncio.py`` left by another user
    would be imported by whoever runs ``tapster``, maybe root. Returns the
    folder added, or None when none was.
    """
    if directory is None:
        path = os.getcwd()
        if os.stat(path).st_mode & 0o002:
            return None
    else:
        path = os.path.abspath(directory)
    if path not in sys.path:
        sys.path.insert(0, path)
    plugins = sys.modules.get("tapster.plugins")
    folder = os.path.join(path, "tapster", "plugins")
    if plugins is not None and os.path.isdir(folder):
        package_path = getattr(plugins, "__path__", None)
        if package_path is not None and folder not in list(package_path):
            package_path.append(folder)
    return path


def _other_sources(options: Any, given: Any, rest: list[str]) -> list[str]:
    """The environment and the config file, below the command line (tapster.config)."""
    from tapster.config._sources import runner_sources

    return runner_sources(options, given, rest)


def _twisted_plugins(taken: list[str]) -> list[Any]:
    """Twisted's service makers as commands: none unless Twisted is importable (twisted_compat)."""
    from tapster.plugin._folders import twisted_package

    if twisted_package() is None:
        return []  # the common case, answered without importing the scanner
    from tapster.twisted_compat._scan import describe

    return describe(taken)[0]


class RunnerOptions(Options):
    """``tapster [options] SUBCOMMAND [SUBCOMMAND options]``."""

    synopsis = "tapster [options] SUBCOMMAND [SUBCOMMAND options] | -y FILE.tac"
    long_description = (
        "Runs a service from a plugin (a SUBCOMMAND, listed below) or from a .tac file (-y), "
        "in the foreground (the default) or as a daemon. "
        "'tapster SUBCOMMAND --help' shows a subcommand's own options. "
        "An option may also be set by the environment variable shown with it "
        "([env: ...]) or in a config file (see --config)."
    )
    version = __version__

    flags = [
        ("nodaemon", "n", "Run in the foreground (the default; accepted for twistd users)."),
        ("daemon", "D", "Run in the background; exit 0 once the service listens."),
        ("syslog", None, "Log to syslog instead of a file or stderr."),
        ("euid", None, "With --uid/--gid, change only the effective ids."),
        ("debug", "b", "Start the Python debugger on an uncaught error (foreground only)."),
        ("savestats", None, "With --profile, save raw statistics instead of a text report."),
        ("spew", None, "Print every Python function call to stdout (very verbose)."),
        ("originalname", None, "Keep the process title (default: 'tapster: NAME')."),
        ("plugins", None, "List every plugin found and any problems; exit 1 if one is broken."),
        ("rebuild_plugin_cache", None, "Rebuild the plugin caches and exit (for packagers)."),
        (
            "reuse_port",
            None,
            "With --workers: each worker gets its own SO_REUSEPORT listener on TCP "
            "endpoints (the kernel spreads connections over them).",
        ),
        (
            "no_spare_worker",
            None,
            "With --workers: keep no spare worker started ahead (saves its memory; "
            "a replacement then takes a full start-up).",
        ),
        ("print_config", None, "Print the effective settings, with where each came from; exit."),
        ("reload", None, "Restart the service when a .py file of the app changes (development)."),
    ]

    parameters = [
        (
            "logfile",
            "l",
            None,
            "Log to this file; '-' is stdout. Default: stderr in the foreground, "
            "tapster.log in the run directory for a daemon.",
            _file,
        ),
        ("log_level", None, "info", "Lowest level logged.", _log_level),
        ("log_format", None, "text", "Log line format.", choice("text", "json")),
        ("log_rotate_size", None, None, "Rotate the log file when it reaches this size.", _size),
        ("log_backups", None, 5, "Rotated log files to keep.", _count),
        ("prefix", None, "tapster", "The syslog identifier (with --syslog)."),
        ("syslog_socket", None, "/dev/log", "The syslog socket (with --syslog).", _file),
        (
            "pidfile",
            None,
            None,
            "Write the PID here, locked while running ('' disables). "
            "Default: none in the foreground, tapster.pid in the run directory for a daemon.",
            _file,
        ),
        ("rundir", "d", ".", "Change to this directory before starting.", _dir),
        ("uid", "u", None, "Switch to this user after binding sockets.", _user),
        ("gid", "g", None, "Switch to this group after binding (default: the user's).", _group),
        ("umask", None, None, "The umask (default: unchanged; 077 for a daemon).", octal_mode),
        ("chroot", None, None, "chroot to this directory before starting (needs root).", _dir),
        ("loop", "r", "auto", "The event loop (see --help-loops).", _loop),
        ("python", "y", None, "Run the application defined in this .tac file.", _file),
        ("profile", None, None, "Profile the run and write the report to this file.", _file),
        ("profiler", None, "cprofile", "The profiler.", choice("cprofile", "profile")),
        ("shutdown_timeout", None, 30.0, "Seconds a graceful stop may take.", _seconds),
        (
            "admin",
            None,
            None,
            "Serve /livez, /readyz, /metrics and /status on this endpoint "
            "(control actions only on a unix socket).",
            _admin_endpoint,
        ),
        (
            "loop_stall",
            None,
            0.5,
            "Log where the event loop is stuck when it has not turned for this long (0: off).",
            _seconds,
        ),
        (
            "shutdown_delay",
            None,
            0.0,
            "On SIGTERM: not ready at once, keep accepting this long, then stop.",
            _seconds,
        ),
        ("workers", "w", None, "Run a supervisor and N worker processes.", _workers),
        (
            "worker_timeout",
            None,
            30.0,
            "With --workers: a worker silent this long is hung (stack logged, replaced).",
            _seconds,
        ),
        (
            "max_worker_memory",
            None,
            None,
            "With --workers: replace a worker whose resident memory stays above this.",
            _memory,
        ),
        (
            "max_worker_age",
            None,
            None,
            "With --workers: replace a worker after about this many seconds.",
            _seconds,
        ),
        (
            "app_dir",
            None,
            None,
            "Put this folder first on sys.path, so its packages and tapster/plugins/ are "
            "found. Default: the current directory, unless it is world-writable.",
            existing_dir,
        ),
        (
            "config",
            None,
            None,
            "Read settings from this TOML file (default: tapster.toml in the app directory, "
            "else [tool.tapster] in its pyproject.toml); see docs/configuration.md.",
            _file,
        ),
        (
            "completion",
            None,
            None,
            "Print a shell completion script.",
            choice("bash", "zsh", "fish"),
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._subcommand_rows: list[tuple[str, None, Callable[[], Any], str]] | None = None
        self.maker: Any = None
        self.app_path: str | None = None
        self.bare = False
        self.config_sources: Any = None  # tapster.config, once the command line is read
        self._tapster_sources = _other_sources
        self._tapster_variable = variable_namer(None)

    def opt_help(self) -> None:
        """Display this help and exit."""
        _show(self.help_text())

    def help_text(self, width: int | None = None) -> str:
        """The ``--help`` text; its commands straight from the plugin cache, without rows."""
        if self._subcommand_rows is not None:
            return super().help_text(width)
        self.app_path = install_app_dir(self.get("app_dir"))
        from tapster.plugin._registry import describe_field
        from tapster.usage._help import help_text

        names, docs = describe_field(SERVICE_MAKER_KIND, "description")
        for info in _twisted_plugins(names):
            names.append(info.name)
            docs.append(info.fields["description"])
        order = sorted(range(len(names)), key=names.__getitem__)  # stable, as in subcommands
        return help_text(self, width, ([names[i] for i in order], [docs[i] for i in order]))

    def opt_version(self) -> None:
        """Display the version and exit."""
        _show(f"{self.command_path()} {self.version}\n")

    def opt_reload_include(self, pattern: str) -> None:
        """With --reload, also watch files matching this glob, e.g. '*.html' (repeatable)."""
        self.setdefault("reload_include", []).append(pattern)

    def opt_help_loops(self) -> None:
        """List the event loops available here and exit."""
        from tapster.runner import _loops

        for name, available, doc in _loops.available_loops():
            mark = " " if available else "-"
            print(f"{mark} {name:<16} {doc}")
        raise SystemExit(0)

    @property
    def subcommands(self) -> list[tuple[str, None, Callable[[], Any], str]]:
        """One row per service-maker plugin, from the cache; nothing is imported."""
        if self._subcommand_rows is None:
            self.app_path = install_app_dir(self.get("app_dir"))
            from tapster.plugin import describe_plugins

            rows = []
            for info in describe_plugins(SERVICE_MAKER_KIND):
                rows.append(
                    (info.name, None, self._factory(info), info.fields.get("description", ""))
                )
            for twisted in _twisted_plugins([row[0] for row in rows]):
                twisted.loop = lambda: (str(self["loop"]), bool(self["daemon"]))
                rows.append(
                    (twisted.name, None, self._factory(twisted), twisted.fields["description"])
                )
            rows.sort(key=lambda row: row[0])
            self._subcommand_rows = rows
        return self._subcommand_rows

    def _factory(self, info: Any) -> Callable[[], Any]:
        name = info.name

        def make() -> Any:
            # From here on plugin code runs (importing, parsing its options):
            # keep what it logs until the run knows where logs go.
            from tapster.runner._logs import capture_early

            capture_early()
            try:
                maker = info.load()
            except Exception as exc:
                raise PluginLoadError(
                    f"the plugin for {name!r} ({info.origin}) cannot be loaded: "
                    f"{type(exc).__name__}: {exc} (see 'tapster --plugins')"
                ) from exc
            options_class = getattr(maker, "options", None)
            if not callable(getattr(maker, "make_service", None)) or options_class is None:
                raise PluginLoadError(
                    f"the plugin for {name!r} ({info.origin}) is not a service maker"
                )
            self.maker = maker
            sub = options_class()
            sub._tapster_variable = variable_namer(name, type(self))
            if self.config_sources is not None:
                sub._tapster_sources = self.config_sources.subcommand_sources(name)
            if not getattr(options_class, "synopsis", None):
                sub.synopsis = f"tapster [options] {name} [{name} options]"
            return sub

        return make

    def post_options(self) -> None:
        """Check combinations that no single option can check."""
        action = self["plugins"] or self["rebuild_plugin_cache"] or self["completion"]
        if self.subcommand is not None and self["python"]:
            raise UsageError(f"give either a subcommand or -y FILE, not both ({self.subcommand})")
        if self.subcommand is None and not self["python"] and not action:
            self.bare = True
        if self["daemon"] and self["nodaemon"]:
            raise UsageError("choose -n/--nodaemon or -D/--daemon, not both")
        if self["daemon"] and self["reload"]:
            raise UsageError("--reload runs in the foreground; drop --daemon")
        if self["workers"] and self["reload"]:
            raise UsageError("--reload runs one process; drop --workers")
        if self["daemon"] and self["debug"]:
            raise UsageError("--debug runs in the foreground; drop --daemon")
        if self["daemon"] and self["logfile"] == "-":
            raise UsageError("a daemon has no stdout; give --logfile a file name or drop --daemon")
        if self["syslog"] and self["logfile"]:
            raise UsageError("choose --syslog or --logfile, not both")
        if self["savestats"] and not self["profile"]:
            raise UsageError("--savestats needs --profile FILE")
        if self["python"] is not None and not self["python"]:
            raise UsageError("-y/--python needs a file name")
        self._check_workers()

    def _check_workers(self) -> None:
        """The ``--workers`` options: only together, and not with what a worker cannot do."""
        if self["workers"] is None:
            for name in ("max_worker_memory", "max_worker_age"):
                if self[name] is not None:
                    raise UsageError(f"--{name.replace('_', '-')} needs --workers N")
            for flag in ("no_spare_worker", "reuse_port"):
                if self[flag]:
                    raise UsageError(f"--{flag.replace('_', '-')} needs --workers N")
            return
        if self["debug"]:
            raise UsageError("--debug runs one process; drop --workers")
        if self["worker_timeout"] <= 0:
            raise UsageError("--worker-timeout must be more than 0 seconds")

    def settings(self) -> RunSettings:
        """The parsed values, typed (imported here: the help path needs none of it)."""
        from tapster.runner._settings import RunSettings

        pidfile = self["pidfile"]
        return RunSettings(
            daemon=bool(self["daemon"]),
            logfile=self["logfile"] or None,
            log_level=_LEVELS[str(self["log_level"])],
            log_format=str(self["log_format"]),
            log_rotate_size=self["log_rotate_size"],
            log_backups=int(self["log_backups"]),
            syslog=bool(self["syslog"]),
            prefix=str(self["prefix"]),
            syslog_socket=str(self["syslog_socket"]),
            pidfile=None if pidfile is None else str(pidfile),
            rundir=str(self["rundir"]),
            uid=self["uid"],
            gid=self["gid"],
            umask=self["umask"],
            chroot=self["chroot"] or None,
            euid=bool(self["euid"]),
            loop=str(self["loop"]),
            tac=self["python"] or None,
            debug=bool(self["debug"]),
            profile=self["profile"] or None,
            profiler=str(self["profiler"]),
            savestats=bool(self["savestats"]),
            spew=bool(self["spew"]),
            originalname=bool(self["originalname"]),
            shutdown_timeout=float(self["shutdown_timeout"]),
            shutdown_delay=float(self["shutdown_delay"]),
            app_dir=self.app_path,
            workers=self["workers"],
            worker_timeout=float(self["worker_timeout"]),
            max_worker_memory=self["max_worker_memory"],
            max_worker_age=self["max_worker_age"],
            admin=self["admin"] or None,
            loop_stall=float(self["loop_stall"]),
            no_spare_worker=bool(self["no_spare_worker"]),
            reuse_port=bool(self["reuse_port"]),
        )
