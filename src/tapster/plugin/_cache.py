"""The plugin cache on disk: JSON files, read fast, written atomically.

A cache file is data that a user can write, so it is JSON and nothing else:
loading it never runs code, and anything unexpected in it (truncation,
garbage, another program's file, another tapster or Python version) makes it
count as absent, to be rebuilt.

Reading happens on every ``tapster --help``. The standard ``json`` module
imports ``re`` (about as long as Python's own start-up here), so reading uses
the C scanner of ``_json`` directly when it is available; writing, which only
happens after something changed, uses ``json``.
"""

from __future__ import annotations

import os
import sys
import time
from stat import S_ISREG

from tapster import __version__

CACHE_NAME = ".tapster-plugin-cache.json"
"""File name of a folder's cache, written inside the drop-in folder itself."""

FORMAT = "tapster-plugin-cache"
FORMAT_VERSION = 5
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


class _ScannerContext:
    """The attributes ``_json.make_scanner`` reads: plain JSON, nothing else."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> object:
        raise ValueError(f"{name} is not allowed in a plugin cache")


def loads(text: str) -> object:
    """Parse one JSON document; raise ``ValueError`` if ``text`` is not exactly that."""
    text = text.strip()
    try:
        from _json import make_scanner
    except ImportError:  # pragma: no cover - CPython always has _json
        import json

        return json.loads(text)
    scan = make_scanner(_ScannerContext())  # type: ignore[arg-type]
    try:
        value, end = scan(text, 0)
    except (StopIteration, RecursionError, ValueError):
        raise ValueError("not a JSON document") from None
    except (SystemError, ImportError):
        # On malformed input the C scanner imports json.decoder to raise its
        # error class, which fails while json itself is not imported.
        raise ValueError("not a JSON document") from None
    if end != len(text):
        raise ValueError("trailing data after JSON")
    return value


def dumps(value: object) -> str:
    """Serialise ``value`` compactly as JSON; ``TypeError``/``ValueError`` if it cannot be.

    Like reading, writing uses the C encoder of ``_json`` directly: importing
    ``json`` would import ``re``, which costs a cold start more than writing.
    The cache holds no cycles (it is built fresh from lists, dicts, strings
    and integers), so the encoder's cycle bookkeeping is left out; NaN and
    infinities are refused, as JSON has none.
    """
    try:
        from _json import encode_basestring, make_encoder
    except ImportError:  # pragma: no cover - CPython always has _json
        import json

        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    encode = make_encoder(None, _not_json, encode_basestring, None, ":", ",", False, False, False)
    return "".join(encode(value, 0))


def _not_json(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON data")


def header() -> dict[str, object]:
    """The fields that make a cache file ours and current."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tapster": __version__,
        "python": PYTHON,
    }


MAX_SIZE = 64 * 1024 * 1024
"""A larger cache file is not read (a real one is a few KiB per hundred plugins)."""


def read(path: str) -> dict[str, object] | None:
    """The cache document at ``path``, or ``None`` if it is missing, corrupt or foreign.

    Every ``tapster`` command reads this file, so it must never wait or eat
    memory: a symlink is not followed, the open does not block (a FIFO with no
    writer), and anything but a regular file of at most ``MAX_SIZE`` bytes (a
    device, ``/dev/zero`` behind a link) counts as absent, to be replaced by
    ``write`` where the folder is writable.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode) or st.st_size > MAX_SIZE:
            return None
        raw = os.read(fd, st.st_size)
        value = loads(raw.decode("utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not isinstance(value, dict):
        return None
    for key, expected in header().items():
        if value.get(key) != expected:
            return None
    return value


def write(path: str, document: dict[str, object], mode: int = 0o644) -> bool:
    """Write ``document`` to ``path`` atomically; return whether it worked.

    The data goes to a new temporary file in the same directory (created
    exclusively, so nothing is overwritten or followed), which is then renamed
    over ``path``: a reader sees the old file or the new one, never half of
    either, even when several processes write at once. ``mode`` is the new
    file's permission (0644 beside a shared folder, 0600 in a user's cache).
    """
    if not os.access(os.path.dirname(path) or os.curdir, os.W_OK):
        return False  # the usual case for a read-only folder: don't even serialise
    try:
        data = dumps({**header(), **document}).encode("utf-8")
    except (TypeError, ValueError):
        return False
    tmp = f"{path}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW, mode)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError:
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_READ_FLAGS = (
    os.O_RDONLY
    | _O_CLOEXEC
    | _O_NOFOLLOW
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
)


def user_cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/tapster`` (default ``~/.cache/tapster``), or ``None`` without a home."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "tapster")


def user_cache_file(prefix: str, key: str) -> str | None:
    """A file in the user cache directory named after ``key`` (e.g. a folder's path)."""
    directory = user_cache_dir()
    if directory is None:
        return None
    return os.path.join(directory, f"{prefix}-{_fnv1a(key):08x}.json")


def _fnv1a(key: str) -> int:
    """The 32-bit FNV-1a hash of ``key``'s UTF-8 bytes.

    A name for a file, not a security measure (the file records the key it
    belongs to). Computed here rather than with ``zlib.crc32``: loading the
    ``zlib`` extension costs every start-up more than hashing a path.
    """
    digest = 0x811C9DC5
    for byte in key.encode("utf-8", "surrogateescape"):
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return digest


def ensure_user_cache_dir() -> bool:
    """Create the user cache directory (mode 0700) if needed; return whether it exists."""
    directory = user_cache_dir()
    if directory is None:
        return False
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError:
        return False
    return os.path.isdir(directory)


def valid_plugins(plugins: object) -> bool:
    """Whether ``plugins`` is a well-formed list of plugin descriptions.

    Each description is ``[attribute, {kind id: name}, {field: value}]`` with
    string values (JSON object keys are always strings). The string checks
    are left to ``str.join``, which rejects anything else in C.
    """
    if type(plugins) is not list:
        return False
    try:
        for plugin in plugins:
            attribute, kinds, fields = plugin
            if (
                type(plugin) is not list
                or type(attribute) is not str
                or type(kinds) is not dict
                or type(fields) is not dict
            ):
                return False
            "".join(kinds.values())
            "".join(fields.values())
    except (TypeError, ValueError):
        return False
    return True


def valid_outcome(error: object, plugins: object) -> bool:
    """Whether a cached outcome is ``(None, plugins)`` or ``(error text, [])``."""
    if error is None:
        return valid_plugins(plugins)
    return type(error) is str and plugins == []


# The compact layout of plugin descriptions in a folder cache. Dicts are the
# costly part of parsing JSON, and a folder's plugins mostly share one shape
# (the same kinds, the same fields), so a document lists each distinct shape
# once, as a "schema" ``[[kind id, ...], [field, ...]]``, and each plugin is a
# flat list ``[attribute, schema index, name per kind..., value per field...]``.


class Schema(tuple[tuple[str, ...], tuple[str, ...], int]):
    """One shape of plugin, ``(kinds, fields, size)``, and where a compact description
    of that shape keeps what: the only code that knows the compact layout's positions.

    A tuple (shapes are dict keys while a document is written) whose parts are read by
    name: ``kinds`` (kind ids), ``fields`` (field names) and ``size`` (the length of a
    compact description).
    """

    __slots__ = ()

    def __new__(cls, kinds: tuple[str, ...], fields: tuple[str, ...]) -> Schema:
        return tuple.__new__(cls, (kinds, fields, 2 + len(kinds) + len(fields)))

    @property
    def kinds(self) -> tuple[str, ...]:
        return self[0]

    @property
    def fields(self) -> tuple[str, ...]:
        return self[1]

    @property
    def size(self) -> int:
        return self[2]

    def names(self, plugin: list[object]) -> list[object]:
        """A compact description's names, one per kind of :attr:`kinds`."""
        return plugin[2 : 2 + len(self[0])]

    def values(self, plugin: list[object]) -> list[object]:
        """A compact description's values, one per field of :attr:`fields`."""
        return plugin[2 + len(self[0]) :]

    def decode(self, plugin: list[object]) -> list[object]:
        """A compact description as ``[attribute, {kind: name}, {field: value}]``."""
        names = dict(zip(self[0], self.names(plugin), strict=True))
        return [plugin[0], names, dict(zip(self[1], self.values(plugin), strict=True))]


def encode_plugins(plugins: list[list[object]], schemas: dict[Schema, int]) -> list[list[object]]:
    """``[attribute, {kind: name}, {field: value}]`` descriptions in the compact layout.

    ``schemas`` maps each shape to its index and grows as new shapes appear.
    """
    out: list[list[object]] = []
    for attribute, kinds, fields in plugins:
        assert isinstance(kinds, dict) and isinstance(fields, dict)
        shape = Schema(tuple(kinds), tuple(fields))
        index = schemas.setdefault(shape, len(schemas))
        out.append([attribute, index, *kinds.values(), *fields.values()])
    return out


def schema_table(schemas: dict[Schema, int]) -> list[list[list[str]]]:
    """The document's ``schemas`` list, in index order."""
    table = sorted(schemas.items(), key=lambda item: item[1])
    return [[list(shape.kinds), list(shape.fields)] for shape, _ in table]


def read_schemas(value: object) -> list[Schema] | None:
    """The ``schemas`` of a document, checked; ``None`` if malformed."""
    if type(value) is not list:
        return None
    schemas: list[Schema] = []
    try:
        for kinds, fields in value:
            if type(kinds) is not list or type(fields) is not list:
                return None
            "".join(kinds)
            "".join(fields)
            schemas.append(Schema(tuple(kinds), tuple(fields)))
    except (TypeError, ValueError):
        return None
    return schemas


def valid_compact(plugins: object, schemas: list[Schema]) -> bool:
    """Whether ``plugins`` is a well-formed list of compact descriptions.

    This runs for every cached module on every start-up, so it checks without
    building anything: types, lengths, and (through ``str.join``, in C) that
    names and values are strings.
    """
    if type(plugins) is not list:
        return False
    try:
        for plugin in plugins:
            index = plugin[1]
            if type(plugin) is not list or type(plugin[0]) is not str or type(index) is not int:
                return False
            if index < 0 or len(plugin) != schemas[index].size:
                return False
            "".join(plugin[2:])
    except (TypeError, ValueError, IndexError, KeyError):
        return False
    return True


def decode_plugins(plugins: list[list[object]], schemas: list[Schema]) -> list[list[object]]:
    """Checked compact descriptions back to ``[attribute, {kind: name}, {field: value}]``."""
    return [schemas[plugin[1]].decode(plugin) for plugin in plugins]  # type: ignore[call-overload]
