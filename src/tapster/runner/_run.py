"""The run path: from parsed options to a running, then stopped, service tree.

The start-up order is the contract (docs/runner.md), one method per step:

1. options were parsed before we get here (no side effects);
2. :meth:`Runner.check_pidfile` locks the pidfile (after resolving
   ``--rundir`` and ``--chroot``, so the checked file is the written one);
3. :meth:`Runner.build` makes the application as the launching user;
4. :meth:`Runner.open_logs`, then :meth:`Runner.enter_environment`
   (chroot, chdir, umask);
5. :meth:`Runner.daemonize` with ``--daemon``;
6. :meth:`Runner.write_pidfile`, :meth:`Runner.privileged_start`,
   :meth:`Runner.drop_privileges`;
7. :meth:`Runner.serve`: start the tree, report readiness, run until a signal.

Error handling: each step raises :class:`StartupError` with a one-line message
for the user; :meth:`Runner.run` prints it (or sends it up the readiness pipe
of a daemon), logs the traceback at debug level, removes the pidfile and
returns status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

from tapster import __version__
from tapster._lazy import import_deferred
from tapster.runner import _app, _daemon, _lifecycle, _loops, _privileges, _systemd
from tapster.runner._files import describe_kind, masked, open_regular
from tapster.runner._logs import (
    FILE_MODE,
    EarlyRecords,
    LogConfig,
    LogError,
    Logs,
    capture_early,
    setup_logging,
    show_on_stderr,
)
from tapster.runner._pidfile import MODE as PIDFILE_MODE
from tapster.runner._pidfile import PidFile, PidFileError
from tapster.runner._roles import choose_role
from tapster.runner._settings import RunSettings
from tapster.runner._signals import SignalWatcher
from tapster.runner._status import EXIT_FAILURE, EXIT_FORCED, EXIT_OK, EXIT_RUNTIME
from tapster.service import Application, ServiceStartError, shutdown

__all__ = ["EXIT_FAILURE", "EXIT_FORCED", "EXIT_OK", "Runner", "StartupError"]

logger = logging.getLogger("tapster.runner")


class StartupError(Exception):
    """A start-up step failed; ``str(exc)`` is the one line the user sees."""


class _Interrupted(BaseException):
    """SIGTERM or SIGINT arrived before the loop could take signals over."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Runner:
    """Runs one application through the start-up steps, then until stopped."""

    def __init__(
        self,
        settings: RunSettings,
        maker: Any = None,
        sub_options: Any = None,
        tapname: str | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        self.role = choose_role(settings, argv)
        settings = self.role.adjust(settings)
        self.settings = settings
        self.maker = maker
        self.sub_options = sub_options
        self.tapname = tapname
        self.root: Application | None = None
        self.pidfile: PidFile | None = None
        self.logs: Logs | None = None
        self.readiness = _daemon.Readiness(None)
        #: What this process is doing, told to systemd and readiness probes.
        self.lifecycle = _lifecycle.current()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_name = _loops.resolved_name(settings.loop)
        self._capture: EarlyRecords | None = None
        self._launcher = False  # True in the original process of a daemon
        self._ready = False  # True once the tree is started and listening
        self._null_fd: int | None = None  # /dev/null, opened before a chroot
        self._loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
        self._profile: _ProfileReport | None = None
        self.ops: Any = None  # runner._operations.Operations with --admin or --loop-stall
        root = settings.chroot
        self.base_dir = (
            os.path.join(os.path.abspath(root), settings.rundir.lstrip("/"))
            if root
            else os.path.abspath(settings.rundir)
        )
        self.role.setup(self)

    # -- paths -------------------------------------------------------------------------

    def outside_path(self, path: str) -> str:
        """Where ``path`` (as the running service names it) is before the chroot."""
        if os.path.isabs(path):
            if self.settings.chroot:
                return os.path.join(os.path.abspath(self.settings.chroot), path.lstrip("/"))
            return path
        return os.path.join(self.base_dir, path)

    @property
    def umask(self) -> int | None:
        """The umask the service runs with: ``--umask``, 077 for a daemon, else None (unchanged).

        Set in :meth:`enter_environment`; the files the runner creates before
        that (pidfile, log file, profile report) get the mode it allows too.
        """
        if self.settings.umask is not None:
            return self.settings.umask
        return 0o077 if self.settings.daemon else None

    @property
    def pidfile_path(self) -> str | None:
        """The pidfile to lock and write, or None when there is none."""
        name = self.settings.pidfile
        if name is None:
            name = "tapster.pid" if self.settings.daemon else ""
        return self.outside_path(name) if name else None

    @property
    def logfile_path(self) -> str | None:
        """The log file, None for stderr, ``-`` for stdout."""
        name = self.settings.logfile
        if self.settings.syslog:
            return None
        if name is None:
            name = "tapster.log" if self.settings.daemon else None
        if name is None or name == "-":
            return name
        return self.outside_path(name)

    # -- the whole run ---------------------------------------------------------------

    def run(self) -> int:
        """Go through every step; return the process exit status."""
        # Records logged so far (while options were parsed) are kept here too.
        self._capture = capture_early()
        previous = _early_signals()
        try:
            self.check_pidfile()
            self.open_profile()
            self.build()
            self.open_logs()
            self.enter_environment()
            if self.settings.daemon and not self.role.upgraded:
                status = self.daemonize()
                if status is not None:
                    return status
            self.write_pidfile()
            self.make_loop()
            self.privileged_start()
            self.drop_privileges()
            return self.role.serve(self)
        except StartupError as exc:
            if self.settings.debug and exc.__cause__ is not None:
                _post_mortem(exc)
            self._fail(str(exc), exc)
            return EXIT_FAILURE
        except _Interrupted as exc:
            if not self._launcher:
                self._fail(f"interrupted by {signal.Signals(exc.signum).name} during start-up")
            return 128 + exc.signum
        except Exception as exc:
            if self.settings.debug:
                _post_mortem(exc)
            if self._ready:
                logger.critical("%r failed while running", self.app_name, exc_info=exc)
                sys.stderr.write(f"tapster: {self.app_name} failed while running: {exc}\n")
                return EXIT_RUNTIME
            self._fail(f"unexpected error during start-up: {type(exc).__name__}: {exc}", exc)
            return EXIT_FAILURE
        finally:
            self._cleanup()
            _restore_signals(previous)

    def _fail(self, message: str, exc: BaseException | None = None) -> None:
        if exc is not None:
            logger.debug("start-up failed", exc_info=exc)
        if self.logs is not None and self.logs.description != "stderr":
            logger.error("start-up failed: %s", message)
        elif self._capture is not None:
            # Logs were not open yet: show what was kept, warnings and above (all at debug).
            level = min(self.settings.log_level, logging.WARNING)
            show_on_stderr(self._capture.finish(), level)
            self._capture = None
        if self.readiness.pending:
            # The launcher returns as soon as it reads this: be gone from disk first.
            if self.pidfile is not None:
                self.pidfile.remove()
                self.pidfile = None
            self.readiness.failed(message)
        else:
            sys.stderr.write(f"tapster: {message}\n")
            sys.stderr.flush()
        if exc is not None and self.role.shows_tracebacks:
            import traceback

            cause = _original(exc)
            traceback.print_exception(type(cause), cause, cause.__traceback__)
            sys.stderr.flush()

    def _cleanup(self) -> None:
        if self._capture is not None:
            records = self._capture.finish()
            self._capture = None
            if not self._launcher:
                show_on_stderr(records, min(self.settings.log_level, logging.WARNING))
        if self.pidfile is not None:
            if self._launcher:
                self.pidfile.forget()
            else:
                self.pidfile.remove()
            self.pidfile = None
        if self.ops is not None:
            self.ops.close()
            self.ops = None
        if self._profile is not None:
            self._profile.close(discard=not self._launcher)
            self._profile = None
        if self.loop is not None:
            _close_loop(self.loop)
            self.loop = None
        if self.logs is not None:
            self.logs.close()
            self.logs = None

    # -- step 2 ------------------------------------------------------------------------

    def check_pidfile(self) -> None:
        """Step 2: lock the pidfile so a second instance cannot start."""
        chroot = self.settings.chroot
        if chroot:
            _check_dir(chroot, "the chroot directory")
        _check_dir(self.base_dir, "the run directory")
        path = self.pidfile_path
        if path is None:
            return
        pidfile = PidFile(path, masked(PIDFILE_MODE, self.umask))
        try:
            pidfile.acquire()
        except PidFileError as exc:
            raise StartupError(str(exc)) from None
        self.pidfile = pidfile

    def open_profile(self) -> None:
        """Step 2b: open the ``--profile`` report now, so a bad path fails the start.

        Opened by the launching user, before any ``chroot`` or uid switch; the
        report is written into this descriptor when the run ends.
        """
        name = self.settings.profile
        if name is None:
            return
        path = self.outside_path(name)
        # Imported now: after a chroot or a uid switch the library may be out of reach.
        import cProfile  # noqa: F401
        import marshal  # noqa: F401
        import pstats  # noqa: F401

        if self.settings.profiler == "profile":
            import profile  # noqa: F401
        try:
            self._profile = _ProfileReport(path, masked(0o644, self.umask))
        except OSError as exc:
            raise StartupError(f"cannot write the profile report {path}: {exc.strerror}") from None

    # -- step 3 ------------------------------------------------------------------------

    def build(self) -> None:
        """Step 3: make the application (as the launching user)."""
        try:
            if self.settings.tac is not None:
                self.root = _app.from_tac(self.settings.tac)
            else:
                name = self.tapname or "tapster"
                self.root = _app.from_maker(self.maker, self.sub_options, name)
        except _app.AppError as exc:
            raise StartupError(str(exc)) from exc

    @property
    def app_name(self) -> str:
        """The application's name (the subcommand or the .tac's Application)."""
        return self.root.name if self.root is not None and self.root.name else "tapster"

    # -- step 4 ------------------------------------------------------------------------

    def open_logs(self) -> None:
        """Step 4a: open the log destination and replay what was logged so far."""
        s = self.settings
        config = LogConfig(
            level=s.log_level,
            format=s.log_format,
            file=self.logfile_path,
            rotate_size=s.log_rotate_size,
            backups=s.log_backups,
            syslog=s.syslog,
            prefix=s.prefix,
            syslog_socket=s.syslog_socket,
            file_mode=masked(FILE_MODE, self.umask),
        )
        try:
            # Replaces every root handler, the capture included (only once it succeeded).
            self.logs = setup_logging(config)
        except LogError as exc:
            raise StartupError(str(exc)) from None
        capture, self._capture = self._capture, None
        for record in capture.finish() if capture is not None else ():
            if record.levelno >= s.log_level:
                self.logs.handler.handle(record)

    def enter_environment(self) -> None:
        """Step 4b: chroot, change to the run directory, set the umask."""
        s = self.settings
        if s.daemon:
            # The daemon's stdio goes to /dev/null, which a chroot may not have.
            self._null_fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        # Import what later steps need now: inside a chroot the library is gone.
        try:
            self._loop_factory = _loops.loop_factory(s.loop)
        except _loops.LoopError as exc:
            raise StartupError(str(exc)) from None
        # A supervisor stays outside the chroot (it starts fresh interpreters); each
        # worker enters it, as a single process does.
        jailed = s.chroot is not None and self.role.switches_user
        if s.chroot is not None and jailed:
            _preload(s)
            try:
                _privileges.enter_chroot(s.chroot)
            except _privileges.PrivilegeError as exc:
                raise StartupError(str(exc)) from None
        # Outside a chroot (or a supervisor beside one), the run directory as seen from here.
        rundir = "/" + s.rundir.lstrip("/") if jailed else self.base_dir
        try:
            os.chdir(rundir)
        except OSError as exc:
            raise StartupError(f"cannot change to run directory {rundir}: {exc.strerror}") from None
        if self.umask is not None:
            os.umask(self.umask)

    # -- step 5 ------------------------------------------------------------------------

    def daemonize(self) -> int | None:
        """Step 5: fork into the background; the launcher gets its exit status."""
        self._launcher = True  # until we know we are the daemon
        null_fd, self._null_fd = self._null_fd, None
        status, message, readiness = _daemon.daemonize(null_fd)
        if status is not None and null_fd is not None:
            os.close(null_fd)
        if status is not None:
            if message == _daemon.DIED:
                self._remove_orphaned_pidfile()
            if message:
                sys.stderr.write(f"tapster: {message}\n")
            return status
        self._launcher = False
        self.readiness = readiness
        return None

    def _remove_orphaned_pidfile(self) -> None:
        """The daemon died without cleaning up: remove its pidfile once nobody holds it."""
        if self.pidfile is not None:
            self.pidfile.remove_when_released()
            self.pidfile = None

    # -- step 6 ------------------------------------------------------------------------

    def write_pidfile(self) -> None:
        """Step 6a: put this process's PID in the locked pidfile."""
        if self.pidfile is not None:
            try:
                self.pidfile.write()
            except PidFileError as exc:
                raise StartupError(str(exc)) from None
        self.set_title()

    def set_title(self) -> None:
        """Title the process ``tapster: NAME`` and the role's mark, unless ``--originalname``."""
        if not self.settings.originalname:
            _set_title(f"tapster: {self.app_name}{self.role.title}")

    def make_loop(self) -> None:
        """Create the event loop (not running yet) so binding code may reach it."""
        premade = getattr(self.maker, "event_loop", None)  # a Twisted plugin's reactor loop
        factory = self._loop_factory or _loops.loop_factory(self.settings.loop)
        try:
            self.loop = premade if premade is not None else factory()
        except _loops.LoopError as exc:
            raise StartupError(str(exc)) from None
        if premade is not None:  # say the loop it really is (a daemon's is the standard one)
            self.loop_name = type(premade).__module__.partition(".")[0]
        asyncio.set_event_loop(self.loop)

    def privileged_start(self) -> None:
        """Step 6b: bind sockets and whatever else needs the launching user's rights."""
        assert self.root is not None
        settings = self.settings
        if settings.admin or settings.loop_stall > 0:
            from tapster.runner._operations import Operations

            self.ops = Operations(self)
            try:
                self.ops.bind()
            except Exception as exc:
                raise StartupError(f"cannot serve --admin: {_describe(exc)}") from exc
        try:
            with self.role.binding():
                self.root.privileged_start()
        except ServiceStartError as exc:
            raise StartupError(
                f"cannot start {self.app_name}: {exc.service_name}: {_describe(exc.cause)}"
            ) from exc
        except Exception as exc:
            raise StartupError(f"cannot start {self.app_name}: {_describe(exc)}") from exc

    def drop_privileges(self) -> None:
        """Step 6c: hand files to the new user, then switch gid (and groups) and uid."""
        assert self.root is not None
        uid = self.settings.uid if self.settings.uid is not None else self.root.uid
        gid = self.settings.gid if self.settings.gid is not None else self.root.gid
        if (uid is None and gid is None) or not self.role.switches_user:
            return
        if gid is None and uid is not None:
            gid = _privileges.primary_group(uid)
        if os.geteuid() == 0:
            owner = uid if uid is not None else -1
            group = gid if gid is not None else -1
            what = ""
            try:
                if self.pidfile is not None:
                    what = f"the pidfile {self.pidfile.path}"
                    self.pidfile.chown(owner, group)
                if self.logs is not None and self.logs.file is not None:
                    what = f"the log file {self.logs.file.path}"
                    self.logs.chown(owner, group)
            except OSError as exc:
                raise StartupError(
                    f"cannot hand {what} to uid {owner}, gid {group}: {exc.strerror or exc}"
                ) from None
        # The new user may not be able to read the library (an interpreter under
        # /root): import now what later steps and the services load on first use.
        _preload(self.settings)
        try:
            _privileges.switch_user(uid, gid, effective_only=self.settings.euid)
        except _privileges.PrivilegeError as exc:
            raise StartupError(str(exc)) from None

    # -- step 7 ------------------------------------------------------------------------

    def serve(self) -> int:
        """Step 7: run the loop until the tree is stopped; return the exit status."""
        assert self.loop is not None
        if self.settings.debug:
            self.loop.set_exception_handler(_debug_exception_handler)
        loop = self.loop
        with _spew(self.settings.spew), _profiled(self.settings, self._profile) as profiler:
            if profiler is None:
                status = loop.run_until_complete(self._main())
            else:
                status = profiler.runcall(lambda: loop.run_until_complete(self._main()))
        if status == EXIT_FORCED:
            self._exit_now(status)
        return int(status)

    def _exit_now(self, status: int) -> None:
        """A forced stop: remove the pidfile, flush the log, and leave without waiting."""
        if self.pidfile is not None:
            self.pidfile.remove()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)

    async def _main(self) -> int:
        assert self.root is not None and self.loop is not None
        root = self.root
        watcher = SignalWatcher(self.loop)
        watcher.install()
        self.role.loop_started(self)
        if self.ops is not None:
            self.ops.loop_started(self.loop)
        watchdog = _systemd.Watchdog(self.loop, self.lifecycle.notifier)
        watchdog.start()
        try:
            logger.info(
                "tapster %s on %s %s, loop %s, pid %d",
                __version__,
                _python_name(),
                sys.version.split()[0],
                self.loop_name,
                os.getpid(),
            )
            logger.info("starting application %r", self.app_name)
            self._check_log()
            try:
                await root.start()
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await shutdown(root, self.settings.shutdown_timeout)
                if isinstance(exc, ServiceStartError):
                    message = f"{exc.service_name}: {_describe(exc.cause)}"
                else:
                    message = _describe(exc)
                raise StartupError(f"cannot start {self.app_name}: {message}") from exc
            where = root.listening()
            logger.info(
                "application %r ready, listening on %s",
                self.app_name,
                ", ".join(where) if where else "nothing",
            )
            self._ready = True
            self.readiness.ready()
            if self.logs is not None:
                self.logs.serving()
            self.lifecycle.set_ready(
                f"serving {self.app_name} on {', '.join(where) if where else 'nothing'}"
            )
            return await self._wait_and_stop(watcher)
        finally:
            watchdog.stop()
            watcher.restore()

    async def _wait_and_stop(self, watcher: SignalWatcher) -> int:
        assert self.root is not None
        while True:
            signum = await watcher.next()
            if signum == signal.SIGHUP:
                # systemd's Type=notify-reload sends SIGHUP and waits for RELOADING=1
                # and READY=1: a single process's reload is reopening its log.
                status = self.lifecycle.status
                self.lifecycle.set_reloading("reloading: reopening the log")
                self._reopen_logs(signum)
                self.lifecycle.set_ready(status)
                continue
            if signum == signal.SIGUSR1:
                self._reopen_logs(signum)
                continue
            break
        if self.ops is not None:
            self.ops.stopping(f"{signal.Signals(signum).name} received")
        timeout = self.settings.shutdown_timeout
        name = signal.Signals(signum).name
        delay = self.settings.shutdown_delay
        if delay > 0 and signum == signal.SIGTERM:
            await self._delay_stop(watcher, name, delay, timeout)
        logger.info("%s received: stopping (within %gs)", name, timeout)
        self.lifecycle.set_stopping(f"stopping {self.app_name}: draining (within {timeout:g} s)")
        self.lifecycle.notifier.extend_timeout(timeout + 1.0)
        stopping = asyncio.ensure_future(shutdown(self.root, timeout))
        while not stopping.done():
            waiting = asyncio.ensure_future(watcher.next())
            done, _ = await asyncio.wait({stopping, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if waiting not in done:
                waiting.cancel()
                continue
            signum = waiting.result()
            if signum == signal.SIGINT:
                logger.warning("second SIGINT: exiting without waiting for the stop")
                stopping.cancel()
                return EXIT_FORCED
            if signum in (signal.SIGUSR1, signal.SIGHUP):
                self._reopen_logs(signum)
        try:
            stopping.result()
        except Exception:
            logger.exception("stopping %r failed", self.app_name)
            return EXIT_RUNTIME
        logger.info("application %r stopped", self.app_name)
        return EXIT_OK

    async def _delay_stop(
        self, watcher: SignalWatcher, name: str, delay: float, timeout: float
    ) -> None:
        """``--shutdown-delay``: not ready at once, keep serving ``delay`` seconds.

        Load balancers (a Kubernetes Service) stop sending new connections a
        moment after the stop was asked; until then the listeners keep
        accepting. A SIGINT meanwhile ends the delay (the stop begins at once).
        """
        logger.info(
            "%s received: not ready any more; accepting for %gs more, then stopping (within %gs)",
            name,
            delay,
            timeout,
        )
        self.lifecycle.set_draining(
            f"stopping {self.app_name}: not ready, accepting for {delay:g} s more"
        )
        self.lifecycle.notifier.extend_timeout(delay + timeout + 1.0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while (remaining := deadline - loop.time()) > 0:
            try:
                signum = await asyncio.wait_for(watcher.next(), remaining)
            except TimeoutError:
                break
            if signum == signal.SIGINT:
                logger.info("SIGINT received: ending the delay")
                break
            if signum in (signal.SIGUSR1, signal.SIGHUP):
                self._reopen_logs(signum)

    def _check_log(self) -> None:
        """A log file that cannot be written at start-up fails the start (Logs.check_written)."""
        if self.logs is not None:
            try:
                self.logs.check_written()
            except LogError as exc:
                raise StartupError(str(exc)) from None

    def _reopen_logs(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.logs is None or self.logs.file is None:
            logger.debug("%s received: no log file to reopen", name)
            return
        try:
            self.logs.reopen()
        except LogError as exc:
            # Said in the file still open, which is where lines keep going.
            logger.warning("%s received: %s", name, exc)
        else:
            logger.info("%s received: log reopened", name)


def _check_dir(path: str, what: str) -> None:
    """Raise :class:`StartupError` unless ``path`` is a directory, saying what it is instead."""
    if os.path.isdir(path):
        return
    if not os.path.lexists(path):
        raise StartupError(f"{what} {path} does not exist")
    if os.path.islink(path) and not os.path.exists(path):
        raise StartupError(f"{what} {path} is a symbolic link to nothing")
    try:
        kind = describe_kind(os.stat(path).st_mode)
    except OSError as exc:
        raise StartupError(f"{what} {path} cannot be used: {exc.strerror}") from None
    raise StartupError(f"{what} {path} is {kind}, not a directory")


def _python_name() -> str:
    name = sys.implementation.name
    return {"cpython": "CPython", "pypy": "PyPy"}.get(name, name)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    text = " ".join(str(exc).split())
    if isinstance(exc, ValueError | LookupError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _early_signals() -> dict[int, Any]:
    """Until the loop takes over, SIGTERM and SIGINT abort start-up cleanly."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted(signum)

    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, interrupt)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        if handler is not None:
            signal.signal(signum, handler)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        if not loop.is_closed():
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
    except Exception:
        logger.debug("closing the loop failed", exc_info=True)
    finally:
        asyncio.set_event_loop(None)
        if loop.is_running():
            # A signal's exception left the loop mid-turn (seen once with uvloop, a
            # spare stopped as it started): the process is leaving, let it be.
            logger.debug("the event loop was left running; not closing it")
        else:
            loop.close()


def _preload(settings: RunSettings) -> None:
    """Import the modules later steps load lazily, before a chroot or a uid switch hides them."""
    import importlib

    names = ["json", "setproctitle", "encodings.idna"]
    if settings.profile:
        names += ["cProfile", "profile", "pstats"]
    if settings.debug:
        names.append("pdb")
    if settings.admin or settings.loop_stall > 0:
        names.append("tapster.runner._operations")  # bound in privileged_start, after a chroot
    if settings.admin:
        names.append("tapster.admin")
    for name in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import_deferred()  # what services import on first use
    # Packages that export their names lazily: resolve them all while the library is in reach.
    for package in ("tapster.service", "tapster.internet", "tapster.endpoints", "tapster.cred"):
        module = sys.modules.get(package)
        for attribute in getattr(module, "__all__", ()):
            with contextlib.suppress(ImportError, AttributeError):
                getattr(module, attribute)


def _set_title(title: str) -> None:
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)


_WRAPPERS = (StartupError, _app.AppError, ServiceStartError)
"""tapster's own exceptions that carry the user's error as ``__cause__``."""


def _original(exc: BaseException) -> BaseException:
    """The user's error inside tapster's wrappers (``StartupError`` and the like)."""
    while isinstance(exc, _WRAPPERS) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _post_mortem(exc: BaseException) -> None:
    """``--debug``: pdb where the user's error was raised, not where tapster re-raised it."""
    import pdb

    pdb.post_mortem(_original(exc).__traceback__)


def _debug_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    loop.default_exception_handler(context)
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        _post_mortem(exc)


@contextlib.contextmanager
def _spew(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return

    def tracer(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            code = frame.f_code
            sys.stdout.write(f"{code.co_filename}:{frame.f_lineno} {code.co_qualname}\n")

    sys.setprofile(tracer)
    try:
        yield
    finally:
        sys.setprofile(None)


class _ProfileReport:
    """The ``--profile`` output file, opened at start-up and written when the run ends."""

    def __init__(self, path: str, mode: int) -> None:
        self.path = path
        self.name = os.path.basename(path)
        directory = os.path.dirname(path) or "."
        try:
            self.dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, f"no such folder {directory}") from None
        except NotADirectoryError:
            raise OSError(errno.ENOTDIR, f"{directory} is not a folder") from None
        try:
            self.created = not _exists(self.name, self.dir_fd)
            self.fd: int | None = open_regular(
                self.name, os.O_WRONLY | os.O_CREAT, mode, dir_fd=self.dir_fd
            )
        except BaseException:
            os.close(self.dir_fd)
            raise

    def write(self, data: bytes) -> None:
        """Replace the file's content with ``data``."""
        assert self.fd is not None
        os.ftruncate(self.fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.pwrite(self.fd, view, len(data) - len(view)) :]
        self.created = False  # it holds a report now: keep it

    def close(self, discard: bool) -> None:
        """Close; with ``discard``, remove a file this run created and never wrote."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if discard and self.created:
            with contextlib.suppress(OSError):
                os.unlink(self.name, dir_fd=self.dir_fd)
        os.close(self.dir_fd)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


@contextlib.contextmanager
def _profiled(settings: RunSettings, report: _ProfileReport | None) -> Iterator[Any]:
    if settings.profile is None or report is None:
        yield None
        return
    if settings.profiler == "profile":
        import profile

        profiler: Any = profile.Profile()
    else:
        import cProfile

        profiler = cProfile.Profile()
    try:
        yield profiler
    finally:
        if settings.savestats:
            import marshal

            profiler.create_stats()  # what dump_stats writes, into our descriptor
            data = marshal.dumps(profiler.stats)
        else:
            import io
            import pstats

            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats()
            data = text.getvalue().encode("utf-8", "replace")
        try:
            report.write(data)
        except OSError as exc:
            logger.error("cannot write the profile report %s: %s", report.path, exc.strerror)
