"""tapster's built-in endpoint types, as ordinary endpoint-parser plugins."""

from tapster.endpoints._parsers import (
    FDParser,
    SSLParser,
    SystemdParser,
    TCPParser,
    UDPParser,
    UNIXParser,
)

tcp = TCPParser("tcp")
tcp6 = TCPParser("tcp6", ipv6=True)
ssl = SSLParser("ssl")
tls = SSLParser("tls")
unix = UNIXParser()
systemd = SystemdParser()
fd = FDParser()
udp = UDPParser()
