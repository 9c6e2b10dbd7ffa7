"""Endpoint parsers: one per description type, found as plugins.

The built-in types (tcp, tcp6, ssl, tls, unix, systemd, fd, udp) are plugin
objects in ``tapster.plugins.tapster_endpoints``; a third-party package adds
a type the same way, with a module-level instance of an
:class:`EndpointParser` subclass in its ``tapster/plugins/`` folder.
"""

from __future__ import annotations

import math
import os
import socket
from typing import ClassVar

from tapster.endpoints import _systemd, _tls
from tapster.endpoints._client import (
    DEFAULT_TIMEOUT,
    ClientEndpoint,
    TCPClientEndpoint,
    UNIXClientEndpoint,
)
from tapster.endpoints._server import (
    DEFAULT_BACKLOG,
    AdoptedServerEndpoint,
    ServerEndpoint,
    TCPServerEndpoint,
    UNIXServerEndpoint,
)
from tapster.endpoints._syntax import Description
from tapster.plugin import PluginKind


class EndpointParser(PluginKind):
    """Turns descriptions of one type (``prefix``) into endpoints.

    Override :meth:`server` and/or :meth:`client`. Both receive a parsed
    :class:`Description`; consume its arguments with ``take``/``require``,
    call ``done()`` to reject leftovers, and raise ``description.error(...)``
    (an ``EndpointError``) for anything wrong. A ValueError raised while
    building the endpoint is turned into an ``EndpointError`` too.
    """

    plugin_kind: ClassVar[str] = "tapster.endpoints.EndpointParser"
    plugin_name_field: ClassVar[str] = "prefix"
    plugin_fields: ClassVar[tuple[str, ...]] = ("prefix",)

    prefix: str

    def server(self, description: Description) -> ServerEndpoint:
        """A server endpoint for ``description``."""
        raise description.error(f"type {self.prefix!r} cannot be used to listen")

    def client(self, description: Description) -> ClientEndpoint:
        """A client endpoint for ``description``."""
        raise description.error(f"type {self.prefix!r} cannot be used to connect")


def _int(description: Description, key: str, value: str | None, default: int) -> int:
    number = description.convert(key, value, _parse_int)
    return default if number is None else number


def _parse_int(text: str) -> int:
    stripped = text.strip()
    if not stripped.isdigit() or not stripped.isascii() or len(stripped) > 12:
        raise ValueError(f"expected a whole number, not {text!r}")
    return int(stripped)


def _parse_mode(text: str) -> int:
    stripped = text.strip()
    if not stripped or len(stripped) > 6 or any(char not in "01234567" for char in stripped):
        raise ValueError(f"expected an octal mode such as 660, not {text!r}")
    return int(stripped, 8)


def _parse_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected seconds, not {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"expected a positive number of seconds, not {text!r}")
    return value


def _port(description: Description, value: str) -> int:
    port = description.convert("port", value, _parse_int)
    assert port is not None
    if port > 65535:
        raise description.error(f"port must be 0 to 65535, not {port}")
    return port


class TCPParser(EndpointParser):
    """``tcp:PORT[:interface=IP][:backlog=N]``; client ``tcp:host=H:port=P[:timeout=S]``."""

    def __init__(self, prefix: str = "tcp", ipv6: bool = False) -> None:
        self.prefix = prefix
        self.ipv6 = ipv6

    def server(self, description: Description) -> ServerEndpoint:
        port = _port(description, description.require("port", 0))
        interface = description.take("interface", aliases=("host",)) or ""
        backlog = _int(description, "backlog", description.take("backlog"), DEFAULT_BACKLOG)
        self._check_family(description, interface)
        description.done()
        return TCPServerEndpoint(
            port, interface, backlog, ipv6=self.ipv6, description=description.text
        )

    def _check_family(self, description: Description, interface: str) -> None:
        if self.ipv6 and interface and ":" not in interface:
            raise description.error(f"tcp6 needs an IPv6 interface, not {interface!r}")

    def client(self, description: Description) -> ClientEndpoint:
        host = description.require("host", 0)
        port = _port(description, description.require("port", 1))
        timeout = description.convert("timeout", description.take("timeout"), _parse_timeout)
        description.done()
        if port == 0:
            raise description.error("port must be 1 to 65535 to connect, not 0")
        return TCPClientEndpoint(
            host, port, timeout=timeout or DEFAULT_TIMEOUT, description=description.text
        )


class SSLParser(EndpointParser):
    """TLS over TCP.

    Server: ``ssl:PORT:cert=FILE[:key=FILE][:chain=FILE][:interface=IP][:backlog=N]``
    (``certKey``, ``privateKey`` and ``extraCertChain`` are accepted as
    aliases; without ``key`` the certificate file must hold the key too).
    Client: ``ssl:host=H:port=P[:server_name=NAME][:ca=FILE][:cert=FILE:key=FILE]``.
    """

    def __init__(self, prefix: str = "ssl") -> None:
        self.prefix = prefix

    def server(self, description: Description) -> ServerEndpoint:
        port = _port(description, description.require("port", 0))
        interface = description.take("interface", aliases=("host",)) or ""
        backlog = _int(description, "backlog", description.take("backlog"), DEFAULT_BACKLOG)
        cert = description.take("cert", aliases=("certificate", "certKey"))
        key = description.take("key", aliases=("private_key", "privateKey"))
        chain = description.take("chain", aliases=("extraCertChain",))
        description.done()
        if cert is None:
            if key is None:
                raise description.error("missing cert=FILE (a PEM certificate)")
            cert, key = key, None
        context = _tls.server_context(cert, key, chain)
        return TCPServerEndpoint(
            port, interface, backlog, ssl_context=context, description=description.text
        )

    def client(self, description: Description) -> ClientEndpoint:
        host = description.require("host", 0)
        port = _port(description, description.require("port", 1))
        timeout = description.convert("timeout", description.take("timeout"), _parse_timeout)
        server_name = description.take("server_name", aliases=("hostname",))
        ca = description.take("ca", aliases=("trustRoots", "cafile"))
        cert = description.take("cert", aliases=("certificate", "certKey"))
        key = description.take("key", aliases=("private_key", "privateKey"))
        description.done()
        if port == 0:
            raise description.error("port must be 1 to 65535 to connect, not 0")
        if key is not None and cert is None:
            raise description.error("key=FILE needs cert=FILE as well")
        context = _tls.client_context(ca, cert, key)
        return TCPClientEndpoint(
            host,
            port,
            timeout=timeout or DEFAULT_TIMEOUT,
            ssl_context=context,
            server_name=server_name,
            description=description.text,
        )


class UNIXParser(EndpointParser):
    """``unix:PATH[:mode=660][:backlog=N]``; client ``unix:path=PATH[:timeout=S]``."""

    prefix = "unix"

    def server(self, description: Description) -> ServerEndpoint:
        path = description.require("path", 0, aliases=("address",))
        mode = description.convert("mode", description.take("mode"), _parse_mode)
        backlog = _int(description, "backlog", description.take("backlog"), DEFAULT_BACKLOG)
        description.take("lockfile")  # accepted for compatibility; the probe replaces it
        description.done()
        return UNIXServerEndpoint(path, mode, backlog, description=description.text)

    def client(self, description: Description) -> ClientEndpoint:
        path = description.require("path", 0)
        timeout = description.convert("timeout", description.take("timeout"), _parse_timeout)
        description.done()
        return UNIXClientEndpoint(
            path, timeout=timeout or DEFAULT_TIMEOUT, description=description.text
        )


_FAMILIES = {"INET": socket.AF_INET, "INET6": socket.AF_INET6, "UNIX": socket.AF_UNIX}


class SystemdParser(EndpointParser):
    """``systemd:index=N`` or ``systemd:name=NAME``: a socket passed by systemd.

    Checked when parsed: the environment must hand sockets to this process
    (``LISTEN_PID``) and the index or name must exist. ``domain=INET|INET6|UNIX``
    is accepted and checked against the socket, whose family is what counts.
    With ``--workers`` the supervisor adopts the socket and a worker takes the
    supervisor's copy (see :func:`_from_supervisor`).
    """

    prefix = "systemd"

    def server(self, description: Description) -> ServerEndpoint:
        index = description.convert("index", description.take("index"), _parse_int)
        name = description.take("name")
        domain = description.take("domain")
        description.done()
        if (index is None) == (name is None):
            raise description.error("give exactly one of index=N or name=NAME")
        if domain is not None and domain.upper() not in _FAMILIES:
            raise description.error(f"domain must be INET, INET6 or UNIX, not {domain!r}")
        inherited = _from_supervisor(description)
        if inherited is not None:
            fd, fd_name = inherited
        else:
            fd, fd_name = _passed_fd(description, index, name)
        endpoint = AdoptedServerEndpoint(
            fd, description=description.text, origin=f"systemd socket {fd_name!r} (fd {fd})"
        )
        if domain is not None:
            family = _socket_family(fd)
            if family != _FAMILIES[domain.upper()]:
                raise description.error(f"the passed socket is not of domain {domain}")
        return endpoint


def _passed_fd(description: Description, index: int | None, name: str | None) -> tuple[int, str]:
    """The descriptor systemd passed for ``index=`` or ``name=``, checked against LISTEN_*."""
    try:
        passed = _systemd.listen_fds()
    except ValueError as exc:
        raise description.error(str(exc)) from None
    if index is not None:
        if index >= len(passed):
            raise description.error(
                f"index {index} is out of range: {len(passed)} socket(s) were passed"
            )
        return passed[index]
    matches = [pair for pair in passed if pair[1] == name]
    if not matches:
        known = ", ".join(sorted({pair[1] for pair in passed}))
        raise description.error(f"no socket named {name!r} was passed (names: {known})")
    return matches[0]


def _from_supervisor(description: Description) -> tuple[int, str] | None:
    """In a worker: the supervisor's copy of the socket ``description`` names, else None.

    A supervisor adopts systemd's sockets like any listener and passes them on
    (``$TAPSTER_WORKER``); a worker never sees ``LISTEN_*`` (they name the
    supervisor's PID), so it parses the same command line against those.
    """
    from tapster.runner._roles import WORKER_ENV

    spec = os.environ.get(WORKER_ENV)
    if spec is None:
        return None
    from tapster.supervisor._worker import WorkerSpec

    for text, fds in WorkerSpec.from_json(spec).listeners:
        if text == description.text and fds:
            return fds[0], "from the supervisor"
    raise description.error("the supervisor passed no socket for it")


def _socket_family(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    try:
        return int(sock.family)
    finally:
        sock.detach()


class FDParser(EndpointParser):
    """``fd:N``: a listening socket inherited on descriptor N (family detected)."""

    prefix = "fd"

    def server(self, description: Description) -> ServerEndpoint:
        number = description.convert("fileno", description.require("fileno", 0), _parse_int)
        assert number is not None
        description.done()
        return AdoptedServerEndpoint(number, description=description.text)


class UDPParser(EndpointParser):
    """``udp:PORT[:interface=IP]``: a datagram socket (for ``DatagramServerService``)."""

    prefix = "udp"

    def server(self, description: Description) -> ServerEndpoint:
        port = _port(description, description.require("port", 0))
        interface = description.take("interface", aliases=("host",)) or ""
        description.done()
        return TCPServerEndpoint(
            port, interface, socket_type=socket.SOCK_DGRAM, description=description.text
        )
