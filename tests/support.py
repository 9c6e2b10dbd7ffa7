"""Helpers shared by the tests: free ports, waiting for sockets, running `tapster`.

Every process started through these helpers is tracked and stopped by the test
that started it (use the ``tapster_proc`` fixture from ``conftest.py``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    Under pytest-xdist each worker process draws from its own slice of 10000-29999
    (below the kernel's ephemeral range): a port one worker was given, and whose
    server is still starting, is never handed to a test in another worker.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if count > 1 and worker.startswith("gw") and worker[2:].isdigit():
        import random

        span = 20000 // count
        first = 10000 + (int(worker[2:]) % count) * span
        for _ in range(500):
            port = random.randrange(first, first + span)
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something true (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until a TCP connect to ``host:port`` succeeds, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


def read_line(port: int, host: str = "127.0.0.1") -> str:
    """Connect to ``host:port`` and return the first line the server sends, stripped."""
    with socket.create_connection((host, port), timeout=10) as conn:
        return conn.makefile("rb").readline().decode().strip()


def wait_for_line(proc: subprocess.Popen[str], port: int, timeout: float = 15.0) -> str:
    """:func:`read_line` once ``proc`` serves on ``port``; fails if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.communicate()[1]}")
        try:
            return read_line(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def tapster_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a ``tapster`` subprocess: this checkout's code, no stray caches."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if extra:
        env.update(extra)
    return env


def tapster_cmd(*args: str) -> list[str]:
    """The argv that runs the real ``tapster`` command of this checkout."""
    return [sys.executable, "-m", "tapster", *args]


def run_tapster(
    args: Sequence[str],
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``tapster ARGS`` to completion and return its result (text mode)."""
    return subprocess.run(
        tapster_cmd(*args),
        cwd=cwd,
        env=tapster_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )


def make_tls_files(folder: Path, hostname: str = "localhost") -> dict[str, Path]:
    """Write a fresh CA and a server certificate it signed, for real TLS handshakes.

    Returns paths: ``ca`` (CA certificate), ``cert`` (server certificate for
    ``hostname``, 127.0.0.1 and ::1), ``key`` (its private key), ``combined``
    (certificate and key in one PEM file) and ``other_key`` (a key that does
    not match ``cert``). Uses the ``cryptography`` package.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tapster test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(hostname),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        "ca": folder / "ca.pem",
        "cert": folder / "server.pem",
        "key": folder / "server.key",
        "combined": folder / "combined.pem",
        "other_key": folder / "other.key",
    }
    cert_pem = server_cert.public_bytes(serialization.Encoding.PEM)
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert_pem)
    paths["key"].write_bytes(key_pem(server_key))
    paths["combined"].write_bytes(cert_pem + key_pem(server_key))
    paths["other_key"].write_bytes(key_pem(ec.generate_private_key(ec.SECP256R1())))
    for name in ("key", "combined", "other_key"):
        paths[name].chmod(0o600)
    return paths


_apt_updated = False


def ensure_tool(binary: str, package: str) -> str | None:
    """Return the path of ``binary``, installing Debian's ``package`` first if need be.

    The test setup installs what the tests need, so the README's one test command
    works on a fresh machine. Installing needs root and apt-get; where either is
    missing, or the install fails, this returns None and the caller skips with a
    reason that names the package.
    """
    global _apt_updated
    import fcntl
    import shutil

    found = shutil.which(binary)
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # One install at a time: the suite's worker processes may all want the same tool,
    # and a second apt-get would fail on dpkg's lock.
    with open("/tmp/tapster-tests-apt.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = shutil.which(binary)
        if found:
            return found
        if not _apt_updated:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            _apt_updated = True
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
            env=env,
            capture_output=True,
            check=False,
            timeout=600,
        )
    return shutil.which(binary)


_commands_for: dict[str, tuple[list[str], dict[str, str]] | None] = {}


def tapster_cmd_for(user: str) -> tuple[list[str], dict[str, str]] | None:
    """A ``python -m tapster`` argv and environment with which ``user`` runs this checkout.

    Our interpreter may live under a home directory ``user`` cannot enter (the
    venv under /root, mode 0700); then the system's Python 3.11+ runs with
    ``src`` and our site-packages on its path. None when neither works. Run
    the command with ``user=USER`` and a ``cwd`` that user may enter.
    """
    if user not in _commands_for:
        import sysconfig

        site = sysconfig.get_paths()["purelib"]
        env = tapster_env({"PYTHONPATH": os.pathsep.join([str(SRC), site])})
        env.pop("HOME", None)
        _commands_for[user] = None
        # The system's Python runs with -S: its own dist-packages (an older pyOpenSSL,
        # say) must not mix with our site-packages (Twisted's plugins would break).
        for candidate in ([sys.executable], ["/usr/bin/python3", "-S"]):
            try:
                check = "import sys, tapster.runner; assert sys.version_info >= (3, 11)"
                probe = subprocess.run(
                    [*candidate, "-c", check],
                    user=user, extra_groups=[], env=env, capture_output=True, timeout=30,
                    check=False, cwd="/",
                )  # fmt: skip
            except (OSError, subprocess.SubprocessError):
                continue
            if probe.returncode == 0:
                _commands_for[user] = ([*candidate, "-m", "tapster"], env)
                break
    return _commands_for[user]


class FakeServiceManager:
    """A stand-in for systemd's notification socket: a datagram socket the test reads.

    ``address`` is what goes in ``$NOTIFY_SOCKET`` (``@name`` for the abstract
    namespace when ``abstract``). Datagrams are collected by a thread, with the
    monotonic time each arrived, until :meth:`close`.
    """

    def __init__(self, folder: Path, abstract: bool = False) -> None:
        import threading

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"tapster-test-{os.getpid()}-{id(self)}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            path = folder / "notify.sock"
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append((time.monotonic(), data.decode()))

    def env(self, watchdog: float | None = None) -> dict[str, str]:
        """The environment systemd would give the service."""
        env = {"NOTIFY_SOCKET": self.address}
        if watchdog is not None:
            env["WATCHDOG_USEC"] = str(int(watchdog * 1e6))
        return env

    def messages(self, pings: bool = False) -> list[str]:
        """The notifications so far, in order (without ``WATCHDOG=1`` unless ``pings``)."""
        with self._lock:
            return [m for _, m in self.received if pings or m != "WATCHDOG=1"]

    def pings(self) -> list[float]:
        """When each ``WATCHDOG=1`` arrived (monotonic seconds)."""
        with self._lock:
            return [t for t, m in self.received if m == "WATCHDOG=1"]

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 30.0) -> list[str]:
        """Wait until ``count`` messages start with ``prefix``; all messages so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if sum(1 for m in found if m.startswith(prefix)) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {count} x {prefix!r} after {timeout} s: {self.messages()}")

    def close(self) -> None:
        self._closed = True
        self._thread.join()
        self.sock.close()
