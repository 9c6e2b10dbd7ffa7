"""Believing a reverse proxy about the client: ``X-Forwarded-For/Proto`` and ``Forwarded``.

Only a request whose peer is one of the trusted proxies (``--forwarded-allow-ips``)
is rewritten. The client is the rightmost address in the chain that is not a
trusted proxy itself (each proxy appends the address it saw, so the entries to
the left of an untrusted one could be made up by the client). ``Forwarded``
(RFC 7239) wins over the ``X-Forwarded-*`` pair when both are sent. No I/O.
"""

from __future__ import annotations

import ipaddress

from ._http import Request

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class ProxyHeaders:
    """Rewrites ``Request.client`` and ``Request.scheme`` for requests from trusted proxies."""

    def __init__(self, allow: tuple[str, ...]) -> None:
        self._any = "*" in allow
        self._hosts: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allow:
            if entry == "*":
                continue
            if "/" in entry:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            else:
                self._hosts.add(str(ipaddress.ip_address(entry)))

    def trusted(self, host: str) -> bool:
        """Whether ``host`` (an address, or a Unix socket's name) is a trusted proxy."""
        if self._any or host in self._hosts:
            return True
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def apply(self, req: Request) -> None:
        """Take the client and scheme from the proxy's headers, if the peer is trusted."""
        if not self.trusted(req.client):
            return
        forwarded = req.get(b"forwarded")
        if forwarded is not None:
            hops = _parse_forwarded(forwarded.decode("latin-1"))
            clients = [hop.get("for", "") for hop in hops]
            protos = [hop.get("proto", "") for hop in hops]
        else:
            header = req.get(b"x-forwarded-for")
            clients = header.decode("latin-1").split(",") if header else []
            proto = req.get(b"x-forwarded-proto")
            protos = proto.decode("latin-1").split(",") if proto else []
        client = self._client(clients)
        if client:
            req.client = client
        # The scheme the proxy nearest to us reports (the last one given).
        named = [p.strip().lower() for p in protos if p.strip()]
        if named:
            scheme = _SCHEMES.get(named[-1])
            if scheme is not None:
                if req.scheme[0] == "w":
                    scheme = "wss" if scheme == "https" else "ws"
                req.scheme = scheme

    def _client(self, chain: list[str]) -> str:
        hosts = [_host(entry) for entry in chain]
        hosts = [host for host in hosts if host]
        for host in reversed(hosts):
            if not self.trusted(host):
                return host
        return hosts[0] if hosts else ""


def _host(entry: str) -> str:
    """The address in one chain entry: ``1.2.3.4``, ``"[::1]:80"``, ``1.2.3.4:5``."""
    entry = entry.strip().strip('"')
    if entry.startswith("["):
        return entry[1 : entry.find("]")] if "]" in entry else ""
    if entry.count(":") == 1:
        entry = entry.partition(":")[0]
    return entry


def _parse_forwarded(value: str) -> list[dict[str, str]]:
    """The elements of a ``Forwarded`` header, each as lower-cased name → value."""
    hops = []
    for element in value.split(","):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, text = pair.partition("=")
            if sep:
                pairs[name.strip().lower()] = text.strip().strip('"')
        hops.append(pairs)
    return hops
