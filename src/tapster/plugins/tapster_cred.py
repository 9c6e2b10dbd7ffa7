"""tapster's built-in ``--auth`` types, as ordinary checker-factory plugins."""

from tapster.cred._factories import (
    AnonymousFactory,
    FileFactory,
    HtpasswdFactory,
    MemoryFactory,
    PasswdFactory,
    SSHKeyFactory,
    UnixFactory,
)

memory = MemoryFactory()
file = FileFactory()
passwd = PasswdFactory()
htpasswd = HtpasswdFactory()
unix = UnixFactory()
anonymous = AnonymousFactory()
sshkey = SSHKeyFactory()
