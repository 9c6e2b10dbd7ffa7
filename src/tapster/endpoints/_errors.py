"""The two ways an endpoint can fail: a bad description, or a failed bind."""

from __future__ import annotations


class EndpointError(ValueError):
    """An endpoint description is malformed; the message quotes it and says why."""

    def __init__(self, description: str, problem: str) -> None:
        self.description = description
        self.problem = problem
        super().__init__(f"bad endpoint {description!r}: {problem}")


class ListenError(OSError):
    """A server endpoint could not bind or listen.

    The message names the address and the reason, e.g.
    ``Couldn't listen on 127.0.0.1:8080: address already in use``; ``errno``
    is kept from the underlying error.
    """

    def __init__(self, address: str, reason: str, errno: int | None = None) -> None:
        super().__init__(f"Couldn't listen on {address}: {reason}")
        self.errno = errno
        self.address = address
        self.reason = reason


def describe_os_error(exc: OSError) -> str:
    """A short lower-case reason for ``exc``: ``address already in use``."""
    import os

    text = os.strerror(exc.errno) if exc.errno else (str(exc) or type(exc).__name__)
    if text[:1].isupper() and text[1:2].islower():
        text = text[:1].lower() + text[1:]  # "Address already in use" -> "address ..."
    return text
