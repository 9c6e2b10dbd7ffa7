"""From a description string to an endpoint: find the parser, run it.

Lookup is cached. The built-in types are answered from the built-in plugin
module without scanning for plugins at all; only an unknown type triggers
one plugin scan (``tapster.plugin.get_plugins``), whose result is kept.
"""

from __future__ import annotations

import importlib
import logging
import threading

from tapster.endpoints._client import ClientEndpoint
from tapster.endpoints._errors import EndpointError
from tapster.endpoints._parsers import EndpointParser
from tapster.endpoints._server import ServerEndpoint
from tapster.endpoints._syntax import Description, parse

logger = logging.getLogger("tapster.endpoints")

BUILTIN_MODULE = "tapster.plugins.tapster_endpoints"


class _Cache:
    """The lookup tables, filled on first use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.builtin: dict[str, EndpointParser] | None = None
        self.discovered: dict[str, EndpointParser] | None = None


_cache = _Cache()


def _parsers_in(module_name: str) -> dict[str, EndpointParser]:
    module = importlib.import_module(module_name)
    found: dict[str, EndpointParser] = {}
    for value in vars(module).values():
        if isinstance(value, EndpointParser):
            found.setdefault(value.prefix, value)
    return found


def _builtin_parsers() -> dict[str, EndpointParser]:
    table = _cache.builtin
    if table is None:
        with _cache.lock:
            table = _cache.builtin = _cache.builtin or _parsers_in(BUILTIN_MODULE)
    return table


def _plugin_parsers() -> dict[str, EndpointParser]:
    table = _cache.discovered
    if table is None:
        builtin = _builtin_parsers()
        with _cache.lock:
            if _cache.discovered is None:
                _cache.discovered = _scan_plugins(builtin)
            table = _cache.discovered
    return table


def _scan_plugins(builtin: dict[str, EndpointParser]) -> dict[str, EndpointParser]:
    from tapster.plugin import get_plugins

    found: dict[str, EndpointParser] = {}
    for parser in get_plugins(EndpointParser):
        prefix = getattr(parser, "prefix", None)
        if not isinstance(prefix, str) or not prefix:
            logger.warning("ignoring endpoint parser %r: it has no prefix", parser)
        elif prefix in builtin:
            if parser is not builtin[prefix] and type(parser) is not type(builtin[prefix]):
                logger.warning(
                    "ignoring endpoint parser %r: the type %r is built in", parser, prefix
                )
        elif prefix in found:
            logger.warning(
                "ignoring endpoint parser %r: %r already handles %r", parser, found[prefix], prefix
            )
        else:
            found[prefix] = parser
    return found


def forget_parsers() -> None:
    """Drop the cached lookup (after installing a plugin in a running process)."""
    with _cache.lock:
        _cache.builtin = _cache.discovered = None


def find_parser(description: Description) -> EndpointParser:
    """The parser for ``description.kind``; raises EndpointError naming the known types."""
    parser = _builtin_parsers().get(description.kind)
    if parser is None:
        parser = _plugin_parsers().get(description.kind)
    if parser is None:
        known = ", ".join(sorted({*_builtin_parsers(), *_plugin_parsers()}))
        raise description.error(f"unknown endpoint type {description.kind!r} (known: {known})")
    return parser


def server_from_string(description: str) -> ServerEndpoint:
    """Parse a server description such as ``tcp:8080:interface=127.0.0.1``.

    Files named in it (certificates) are read now and inherited sockets are
    checked now, so mistakes show up before anything starts. Every problem
    raises :class:`EndpointError` with a message quoting ``description``.
    """
    parsed = parse(description)
    parser = find_parser(parsed)
    try:
        return parser.server(parsed)
    except EndpointError:
        raise
    except ValueError as exc:
        raise parsed.error(str(exc)) from None


def client_from_string(description: str) -> ClientEndpoint:
    """Parse a client description such as ``tcp:host=example.com:port=80``.

    Raises :class:`EndpointError` with a message quoting ``description``.
    """
    parsed = parse(description)
    parser = find_parser(parsed)
    try:
        return parser.client(parsed)
    except EndpointError:
        raise
    except ValueError as exc:
        raise parsed.error(str(exc)) from None
