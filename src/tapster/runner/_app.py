"""Building the application to run: from a service-maker plugin or from a ``.tac`` file.

Both paths end with a :class:`tapster.service.Application` (the root the
runner runs). Every failure becomes an :class:`AppError` with one line that
names the file or plugin and says what to do; the traceback goes to the log at
debug level.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from tapster.runner._files import read_regular
from tapster.service import Application, Service

__all__ = ["AppError", "from_maker", "from_tac"]

logger = logging.getLogger("tapster.runner")

TAC_SIZE_LIMIT = 10 << 20  # a .tac is a few lines of Python; /dev/zero is not


class AppError(Exception):
    """The application cannot be built; the message is for the user."""


def from_maker(maker: Any, options: Any, name: str) -> Application:
    """Ask the plugin ``maker`` for its service and root it in an ``Application``."""
    try:
        service = maker.make_service(options)
    except Exception as exc:
        logger.debug("make_service of %r failed", name, exc_info=True)
        text = _text(exc)
        what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise AppError(f"cannot build {name}: {what}{_plugin_line(exc, maker)}") from exc
    if isinstance(service, Application):
        return service
    if not isinstance(service, Service):
        raise AppError(
            f"{name}: make_service returned {type(service).__name__}, "
            "not a tapster.service.Service (a bug in the plugin)"
        )
    app = Application(name)
    service.set_parent(app)
    return app


_TAC_HINT = (
    "add 'application = Application(\"NAME\")' (from tapster.service import Application) "
    "and attach your services to it with service.set_parent(application)"
)


def from_tac(path: str) -> Application:
    """Run the ``.tac`` file at ``path`` and return the ``application`` it defines."""
    try:
        source = read_regular(path, TAC_SIZE_LIMIT)
    except OSError as exc:
        raise AppError(f"cannot read {path}: {exc.strerror}") from None
    try:
        code = compile(source, path, "exec")
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno}" if exc.lineno else path
        raise AppError(f"{where}: syntax error: {exc.msg}") from None
    except ValueError as exc:  # NUL bytes and the like
        raise AppError(f"{path}: not a Python file: {exc}") from None
    namespace: dict[str, Any] = {
        "__name__": "__tac__",
        "__file__": os.path.abspath(path),
        "__builtins__": __builtins__,
    }
    try:
        exec(code, namespace)  # noqa: S102 - running the user's own .tac file is the job
    except SystemExit as exc:
        raise AppError(f"{path} called exit({exc.code}) while loading") from None
    except Exception as exc:
        logger.debug("running %s failed", path, exc_info=True)
        line = _tac_line(exc, path)
        raise AppError(f"{path}{line}: {_describe(exc)}") from exc
    if "application" not in namespace:
        raise AppError(f"{path} does not define 'application': {_TAC_HINT}")
    application = namespace["application"]
    if isinstance(application, Application):
        return application
    if isinstance(application, Service):
        root = Application(os.path.splitext(os.path.basename(path))[0] or "tac")
        application.set_parent(root)
        return root
    raise AppError(
        f"{path}: 'application' is a {type(application).__name__}, "
        f"not a tapster.service.Application; {_TAC_HINT}"
    )


def _tac_line(exc: BaseException, path: str) -> str:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f":{line}" if line else ""


def _plugin_line(exc: BaseException, maker: Any) -> str:
    """`` (at FILE:LINE)``: the innermost frame of the traceback in the plugin's own code.

    The plugin's code is the file of the module that defines the maker's class
    and, when that module belongs to a package other than tapster (a project's
    ``myproject.plugin``), every file of that package; tapster's own frames (an
    ``options["nokey"]`` lookup) and libraries' are passed over. Without such a
    frame, the ``make_service`` call itself is named.
    """
    module = sys.modules.get(type(maker).__module__)
    own = getattr(module, "__file__", None)
    top = sys.modules.get(type(maker).__module__.partition(".")[0])
    package = None if top is None or top.__name__ == "tapster" else getattr(top, "__path__", None)
    folders = tuple(os.path.join(folder, "") for folder in package or ())
    tb = exc.__traceback__
    if tb is None or tb.tb_next is None:
        return ""
    tb = tb.tb_next  # the make_service frame (the first is from_maker's)
    where = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == own or filename.startswith(folders):
            where = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return f" (at {where[0]}:{where[1]})"


def _text(exc: BaseException) -> str:
    """The exception's message on one line (an ``OSError``'s reason and file name)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return " ".join(str(exc).split())


def _describe(exc: BaseException) -> str:
    text = _text(exc)
    if isinstance(exc, ValueError | OSError | LookupError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
