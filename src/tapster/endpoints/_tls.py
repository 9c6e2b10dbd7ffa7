"""TLS contexts built from files, checked when the description is parsed.

Defaults come from ``ssl.create_default_context`` (certificate verification
for clients, current cipher suites) with TLS 1.2 as the oldest version.
"""

from __future__ import annotations

import os
import ssl
import stat

#: PEM files bigger than this are not certificates or keys.
_MAX_PEM_BYTES = 1 << 20


def _read(role: str, path: str) -> bytes:
    """The bytes of a regular, small file, or a ValueError that says what is wrong."""
    if not path or "\0" in path:
        raise ValueError(f"the {role} path {path!r} is not a file name")
    try:
        with open(path, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ValueError(f"the {role} file {path!r} is not a regular file")
            data = handle.read(_MAX_PEM_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(f"cannot read the {role} file {path!r}: {reason.lower()}") from None
    if len(data) > _MAX_PEM_BYTES:
        raise ValueError(f"the {role} file {path!r} is too big to be a PEM file")
    return data


def server_context(
    certificate: str, key: str | None = None, chain: str | None = None
) -> ssl.SSLContext:
    """A server context for ``certificate`` (PEM), its ``key`` and an extra ``chain``.

    Without ``key`` the key is read from the certificate file (one combined
    PEM). Raises ValueError with a one-line reason if a file is missing,
    unreadable, not PEM, or the key does not match.
    """
    cert_pem = _read("certificate", certificate)
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise ValueError(f"{certificate!r} holds no PEM certificate")
    key_path = key or certificate
    key_pem = cert_pem if key is None else _read("private key", key_path)
    if b"PRIVATE KEY-----" not in key_pem:
        raise ValueError(f"{key_path!r} holds no PEM private key")
    chain_pem = b""
    if chain:
        chain_pem = _read("certificate chain", chain)
        if b"-----BEGIN CERTIFICATE-----" not in chain_pem:
            raise ValueError(f"{chain!r} holds no PEM certificate")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if chain:
            # load_cert_chain wants the leaf and its chain in one file; only
            # public certificates go into the temporary file, never the key.
            import tempfile  # shutil, bz2, lzma, random: only when a chain is given

            with tempfile.TemporaryDirectory(prefix="tapster-tls-") as folder:
                combined = os.path.join(folder, "chain.pem")
                with open(combined, "wb") as handle:
                    handle.write(cert_pem.rstrip(b"\n") + b"\n" + chain_pem)
                context.load_cert_chain(combined, key_path)
        else:
            context.load_cert_chain(certificate, key_path)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(
                f"the key {key_path!r} does not belong to the certificate {certificate!r}"
            ) from None
        reason = exc.reason or str(exc)
        raise ValueError(
            f"the certificate {certificate!r} and key {key_path!r} do not load ({reason})"
        ) from None
    except OSError as exc:
        raise ValueError(f"cannot load the certificate {certificate!r}: {exc.strerror}") from None
    return context


def client_context(
    ca: str | None = None, certificate: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca`` (default: the system's CAs).

    ``certificate`` and ``key`` add a client certificate.
    """
    cadata: str | None = None
    if ca is not None:
        data = _read("CA", ca)
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ValueError(f"{ca!r} holds no PEM certificate")
        cadata = data.decode("ascii", "replace")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=cadata)
    except ssl.SSLError as exc:
        raise ValueError(f"the CA file {ca!r} does not load ({exc.reason or exc})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        _read("certificate", certificate)
        if key is not None:
            _read("private key", key)
        try:
            context.load_cert_chain(certificate, key)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"the client certificate {certificate!r} does not load ({exc})"
            ) from None
    return context
