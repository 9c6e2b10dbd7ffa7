"""Server endpoints: where a service listens, bound synchronously.

A server endpoint has two halves. ``bind()`` is synchronous and returns bound,
listening, non-blocking sockets: it runs in ``privileged_start``, before the
event loop runs and before the runner drops privileges. Serving those sockets
is the async half, done by ``tapster.internet``. ``release()`` closes them and
removes what ``bind()`` created (a Unix socket file).
"""

from __future__ import annotations

import abc
import contextlib
import functools
import os
import socket
import ssl
import stat
from collections.abc import Callable
from typing import Any

from tapster.endpoints import _inherited
from tapster.endpoints._errors import ListenError, describe_os_error

#: Default listen queue length when a description gives no ``backlog``.
DEFAULT_BACKLOG = 128


class ServerEndpoint(abc.ABC):
    """Somewhere to listen. Subclasses implement :meth:`bind`."""

    #: ``socket.SOCK_STREAM`` or ``socket.SOCK_DGRAM``.
    socket_type: int = socket.SOCK_STREAM
    #: A server-side TLS context for the accepted connections, or None.
    ssl_context: ssl.SSLContext | None = None
    #: The description this endpoint was parsed from (or an equivalent one).
    description: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        real_bind = cls.__dict__.get("bind")
        if real_bind is not None and not getattr(real_bind, "__isabstractmethod__", False):
            cls.bind = _through_table(real_bind)  # type: ignore[method-assign,assignment]

    @abc.abstractmethod
    def bind(self) -> list[socket.socket]:
        """Bind and listen; return non-blocking sockets. Raises :class:`ListenError`.

        Every subclass's ``bind`` goes through :mod:`tapster.endpoints._inherited`,
        so that a worker gets its supervisor's listeners instead of binding again.
        """

    def release(self, sockets: list[socket.socket]) -> None:
        """Close ``sockets`` (from :meth:`bind`) and undo what binding created."""
        for sock in sockets:
            sock.close()

    def address_of(self, sock: socket.socket) -> str:
        """How ``listening()`` reports ``sock``: ``tcp:127.0.0.1:8080``, ``unix:/run/x.sock``."""
        scheme = "ssl" if self.ssl_context is not None else None
        return format_address(sock, scheme)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description!r}>"


def _through_table(
    real_bind: Callable[[ServerEndpoint], list[socket.socket]],
) -> Callable[[ServerEndpoint], list[socket.socket]]:
    if getattr(real_bind, "_through_table", False):
        return real_bind

    @functools.wraps(real_bind)
    def bind(self: ServerEndpoint) -> list[socket.socket]:
        return _inherited.bind(self, real_bind)

    bind._through_table = True  # type: ignore[attr-defined]
    return bind


def format_address(sock: socket.socket, scheme: str | None = None) -> str:
    """``tcp:127.0.0.1:8080``, ``tcp:[::1]:8080``, ``udp:...``, ``unix:/path``."""
    try:
        name = sock.getsockname()
    except OSError:
        return f"{scheme or 'socket'}:closed"
    if sock.family == socket.AF_UNIX:
        path = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        return f"unix:{path or '(unnamed)'}"
    if scheme is None:
        scheme = "udp" if sock.type == socket.SOCK_DGRAM else "tcp"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        return f"{scheme}:[{host}]:{port}"
    return f"{scheme}:{host}:{port}"


def host_port(host: str, port: int) -> str:
    """``127.0.0.1:8080`` or ``[::1]:8080``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip_literal(text: str) -> bool:
    """True when the C library reads ``text`` as an IPv4 or IPv6 address.

    The same addresses ``ipaddress.ip_address`` accepts (no leading zeros in
    IPv4 parts), without the cost of importing ``ipaddress`` on start-up.
    """
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        socket.inet_pton(family, text)
    except (OSError, ValueError):
        return False
    return True


def check_interface(interface: str) -> str:
    """Return ``interface`` if it is an IP address literal, else raise ValueError."""
    if interface:
        address = interface.split("%", 1)[0]
        if _is_ip_literal(address):
            return interface
        import ipaddress  # the slow, exact check only for what inet_pton refused

        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(
                f"interface must be an IP address such as 127.0.0.1 or ::1, not {interface!r}"
            ) from None
    return interface


def check_port(port: int) -> int:
    """Return ``port`` if it is an int in 0..65535, else raise ValueError."""
    if isinstance(port, bool) or not isinstance(port, int):
        raise ValueError(f"port must be a whole number, not {port!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0 to 65535, not {port}")
    return port


def check_backlog(backlog: int) -> int:
    """Return ``backlog`` if it is positive, else raise ValueError."""
    if backlog < 1:
        raise ValueError(f"backlog must be at least 1, not {backlog}")
    return backlog


class TCPServerEndpoint(ServerEndpoint):
    """TCP on ``interface`` (an IPv4 or IPv6 literal; empty: every IPv4 address).

    ``ipv6=True`` makes the empty interface mean every IPv6 address (``::``).
    With ``ssl_context`` the accepted connections speak TLS.
    """

    def __init__(
        self,
        port: int,
        interface: str = "",
        backlog: int = DEFAULT_BACKLOG,
        *,
        ipv6: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        socket_type: int = socket.SOCK_STREAM,
        description: str | None = None,
    ) -> None:
        self.port = check_port(port)
        self.interface = check_interface(interface)
        self.backlog = check_backlog(backlog)
        self.ipv6 = ipv6 or ":" in interface
        self.ssl_context = ssl_context
        self.datagram = socket_type == socket.SOCK_DGRAM
        self.socket_type = socket_type
        if description is None:
            kind = "udp" if self.datagram else ("ssl" if ssl_context else "tcp6" if ipv6 else "tcp")
            description = f"{kind}:{port}"
            if interface:
                description += ":interface=" + interface.replace(":", "\\:")
        self.description = description

    def bind(self) -> list[socket.socket]:
        """Bind one socket (SO_REUSEADDR) and listen on it."""
        return self._bind(listen=True, reuse_port=False)

    def reserve(self) -> list[socket.socket]:
        """Bind one stream socket with SO_REUSEPORT, without listening on it.

        The port is held (a plain bind of it fails), and sockets of the same
        user that also set SO_REUSEPORT may bind it and listen: each gets its
        own accept queue and the kernel spreads connections over them
        (``tapster --workers N --reuse-port``). The reserving socket, not
        listening, gets none.
        """
        if self.datagram:
            raise ListenError(self.description, "only a stream socket can be reserved")
        return self._bind(listen=False, reuse_port=True)

    def _bind(self, *, listen: bool, reuse_port: bool) -> list[socket.socket]:
        family = socket.AF_INET6 if self.ipv6 else socket.AF_INET
        host = self.interface or ("::" if self.ipv6 else "0.0.0.0")
        address = host_port(host, self.port)
        sockaddr = self._sockaddr(host, family, address)
        sock = socket.socket(family, self.socket_type)
        try:
            if not self.datagram:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sockaddr)
            if listen and not self.datagram:
                sock.listen(self.backlog)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ListenError(address, describe_os_error(exc), exc.errno) from None
        return [sock]

    def _sockaddr(self, host: str, family: int, address: str) -> tuple[Any, ...]:
        # A literal needs no resolver (which would also import the idna codec:
        # that fails once privileges are dropped if the stdlib is unreadable).
        if family == socket.AF_INET:
            return (host, self.port)
        if "%" not in host:
            return (host, self.port, 0, 0)
        try:  # fe80::1%eth0: the resolver turns the zone into a scope id
            info = socket.getaddrinfo(
                host,
                self.port,
                family,
                self.socket_type,
                flags=socket.AI_NUMERICHOST | socket.AI_PASSIVE,
            )
        except socket.gaierror as exc:
            raise ListenError(address, str(exc.strerror or exc)) from None
        return tuple(info[0][4])


class UNIXServerEndpoint(ServerEndpoint):
    """A Unix stream socket at ``path``.

    A socket file left behind by a process that is gone (nothing accepts a
    connection on it) is replaced; one that a live process listens on is not,
    and neither is a file that is not a socket. ``mode`` (e.g. ``0o660``) is
    applied to the socket file after binding. ``release()`` removes the file
    if it is still the one this endpoint created.
    """

    def __init__(
        self,
        path: str,
        mode: int | None = None,
        backlog: int = DEFAULT_BACKLOG,
        *,
        description: str | None = None,
    ) -> None:
        if not path:
            raise ValueError("a Unix socket needs a path")
        if "\0" in path:
            raise ValueError("a Unix socket path cannot contain a NUL character")
        if mode is not None and not 0 <= mode <= 0o7777:
            raise ValueError(f"mode must be an octal permission such as 660, not {mode:o}")
        self.path = path
        self.mode = mode
        self.backlog = check_backlog(backlog)
        self.description = description or "unix:" + path.replace(":", "\\:")
        self._identity: tuple[int, int] | None = None

    def bind(self) -> list[socket.socket]:
        """Remove a stale socket file, bind, apply ``mode`` and listen."""
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._bind_restricted(sock)
            info = os.stat(self.path)
            self._identity = (info.st_dev, info.st_ino)
            if self.mode is not None:
                os.chmod(self.path, self.mode)
            sock.listen(self.backlog)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ListenError(self.path, describe_os_error(exc), exc.errno) from None
        return [sock]

    def _bind_restricted(self, sock: socket.socket) -> None:
        """Bind so that the file never exists with looser permissions than ``mode``.

        The umask is tightened around ``bind`` (never loosened: a file another
        thread creates meanwhile only gets stricter permissions), and ``mode``
        is then set exactly with ``chmod``.
        """
        if self.mode is None:
            sock.bind(self.path)
            return
        old = os.umask(0o077)
        os.umask(old | (0o777 & ~self.mode))
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)

    def _remove_stale(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ListenError(self.path, describe_os_error(exc), exc.errno) from None
        if not stat.S_ISSOCK(info.st_mode):
            raise ListenError(self.path, "the file exists and is not a socket; remove it first")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(self.path)
        except (ConnectionRefusedError, FileNotFoundError):
            # Nobody accepts on it: left over from a process that is gone.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            return
        except OSError as exc:
            raise ListenError(self.path, describe_os_error(exc), exc.errno) from None
        finally:
            probe.close()
        raise ListenError(self.path, "another process is listening on it")

    def disown(self) -> None:
        """Leave the socket file in place on release: another process serves it on."""
        self._identity = None

    def release(self, sockets: list[socket.socket]) -> None:
        """Close the socket and remove its file, if the file is still ours."""
        super().release(sockets)
        identity, self._identity = self._identity, None
        if identity is None:
            return
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == identity:
                os.unlink(self.path)
        except OSError:
            pass


class AdoptedServerEndpoint(ServerEndpoint):
    """A listening socket this process inherited (``fd:N``, ``systemd:...``).

    The family and type are read from the socket itself. Each ``bind()``
    works on a duplicate of the descriptor, so the service can be stopped
    and started again; the inherited descriptor itself is made
    non-inheritable so that child processes do not keep it open.
    """

    def __init__(self, fd: int, *, description: str | None = None, origin: str = "") -> None:
        self.origin = origin or f"file descriptor {fd}"
        if not 0 <= fd < 2**31:
            raise ValueError(f"{fd} is not a file descriptor number")
        try:
            kind = socket_option(fd, socket.SO_TYPE)
        except OSError as exc:
            raise ValueError(
                f"{self.origin} is not an open socket ({describe_os_error(exc)})"
            ) from None
        if kind not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            raise ValueError(f"{self.origin} is neither a stream nor a datagram socket")
        self.fd = fd
        self.socket_type = kind
        self.description = description or f"fd:{fd}"

    def bind(self) -> list[socket.socket]:
        """Adopt (a duplicate of) the inherited socket after checking that it listens."""
        try:
            os.set_inheritable(self.fd, False)
            sock = socket.socket(fileno=os.dup(self.fd))
        except OSError as exc:
            raise ListenError(self.origin, describe_os_error(exc), exc.errno) from None
        try:
            if sock.type == socket.SOCK_STREAM and not sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_ACCEPTCONN
            ):
                raise ListenError(self.origin, "the socket is not listening")
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            if isinstance(exc, ListenError):
                raise
            raise ListenError(self.origin, describe_os_error(exc), exc.errno) from None
        return [sock]


def socket_option(fd: int, option: int) -> int:
    """``getsockopt(SOL_SOCKET, option)`` on a raw descriptor, without adopting it."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        return sock.getsockopt(socket.SOL_SOCKET, option)
    finally:
        sock.close()
