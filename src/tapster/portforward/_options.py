"""The command line of ``tapster portforward``."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from tapster.usage import Options, UsageError, choice, port, positive_int


def _seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 2.5") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a positive number of seconds")
    return value


_seconds.coerce_doc = "A positive number."  # type: ignore[attr-defined]


#: One label of a host name: RFC 1123 letters, digits and inner hyphens, plus the
#: underscore that resolvers accept in practice (e.g. container names).
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\Z")

_HOST_EXPECTED = "expected a host name such as db.example or an IP address such as 10.0.0.7"


def host(text: str) -> str:
    """A destination host: an IP literal (IPv6 with or without brackets) or a host name.

    Checked up front so a typo is a usage error rather than a proxy that starts
    and then fails every connection. Names are checked after IDNA encoding, so
    internationalised names work; the value is returned as given (brackets
    removed).
    """
    name = text.strip()
    if name.startswith("[") and name.endswith("]"):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            raise ValueError("expected an IPv6 address between the brackets") from None
        return name[1:-1]
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return name
    if not name:
        raise ValueError(_HOST_EXPECTED)
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(_HOST_EXPECTED) from None
    labels = ascii_name.removesuffix(".").split(".")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(_HOST_EXPECTED)
    if labels[-1].isdigit():
        raise ValueError("not a valid IP address (and a host name cannot end in a number)")
    return name


host.coerce_doc = "A host name or an IP address."  # type: ignore[attr-defined]


class PortForwardOptions(Options):
    """Options of ``tapster portforward`` (compatible with ``twistd portforward``)."""

    long_description = (
        "Forward every TCP connection accepted on --port to --host:--dest-port "
        "(or to the client endpoint --dest), both ways, until either side closes."
    )
    parameters = [
        (
            "port",
            "p",
            "tcp:6666:interface=127.0.0.1",
            "Endpoint to listen on, e.g. tcp:6666 (every interface) or "
            "tcp:6666:interface=127.0.0.1. A bare number means tcp:NUMBER. The default "
            "listens on the loopback interface only, so nothing is exposed by accident.",
        ),
        # --host and --dest-port: their help is the docstring of opt_host / opt_dest_port.
        ("host", "h", "localhost", None, host),
        ("dest_port", "d", 6665, None, port),
        (
            "dest",
            None,
            None,
            "Destination as a client endpoint, e.g. tcp:host=db.example:port=5432 "
            "or unix:path=/run/app.sock (instead of --host and --dest-port, not with them).",
        ),
        (
            "max_connections",
            "m",
            None,
            "Most connections forwarded at once; more are closed at once (default: no limit).",
            positive_int,
        ),
        ("connect_timeout", None, 10.0, "Seconds to wait for the destination.", _seconds),
        (
            "idle_timeout",
            None,
            None,
            "Close a connection when no byte has moved either way for this many seconds "
            "(default: never).",
            _seconds,
        ),
        (
            "engine",
            None,
            "auto",
            "How bytes move: splice (zero-copy, Linux, plain TCP or Unix sockets), transport "
            "(asyncio protocols; works with TLS) or auto (splice where it can).",
            choice("auto", "splice", "transport"),
        ),
        (
            "drain_timeout",
            None,
            5.0,
            "On stop, seconds open connections get to end by themselves before they are closed.",
            _seconds,
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        # Which of --host / --dest-port the command line gave (both have defaults,
        # so their values cannot tell), to refuse them next to --dest.
        self._given: list[str] = []

    def opt_host(self, value: str) -> None:
        """Host to forward connections to."""
        self["host"] = value
        if "--host" not in self._given:
            self._given.append("--host")

    def opt_dest_port(self, value: int) -> None:
        """Port to forward connections to."""
        self["dest_port"] = value
        if "--dest-port" not in self._given:
            self._given.append("--dest-port")

    def post_options(self) -> None:
        """Parse the endpoints now, so a bad one is a usage error before anything starts."""
        from tapster.endpoints import EndpointError, client_from_string, server_from_string

        listen = str(self["port"]).strip()
        if listen.isdigit():
            listen = f"tcp:{listen}"
        try:
            self["listen_endpoint"] = server_from_string(listen)
        except EndpointError as exc:
            raise UsageError(f"--port: {exc}") from None
        if self["listen_endpoint"].socket_type != socket.SOCK_STREAM:
            raise UsageError(
                f"--port {listen!r}: forwarding needs a stream endpoint such as tcp:6666, "
                "ssl:6666:cert=FILE or unix:PATH, not a datagram one"
            )
        destination: Any
        if self["dest"] is not None:
            if self._given:
                raise UsageError(
                    f"--dest cannot be combined with {' and '.join(self._given)}: --dest names "
                    "the whole destination (e.g. --dest tcp:host=db.example:port=5432)"
                )
            try:
                destination = client_from_string(self["dest"])
            except EndpointError as exc:
                raise UsageError(f"--dest: {exc}") from None
        else:
            if not self["dest_port"]:
                raise UsageError("--dest-port must be 1-65535")
            destination = (str(self["host"]), int(self["dest_port"]))
        self["destination"] = destination
        if self["engine"] == "splice":
            from tapster.portforward._service import splice_problem

            problem = splice_problem(self["listen_endpoint"], destination)
            if problem:
                raise UsageError(f"--engine splice cannot be used here: {problem}")
