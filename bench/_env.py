"""The two interpreters, the environment measured commands get, and the machine's description.

tapster side: the project's own ``.venv`` (editable install of this working tree), so every run
measures the code as it is on disk. twistd side: ``bench/.venv-twisted``, made on first use with
``python3 -m venv`` and ``pip install twisted==TWISTED_VERSION`` from the same base interpreter.
Other peers a case compares with (gunicorn) get a venv of their own the same way
(:meth:`Context.peer_python`), never installed into tapster's.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench._model import Unavailable

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
TWISTED_VERSION = "26.10.0"
TWISTED_VENV = BENCH / ".venv-twisted"
GUNICORN_VERSION = "27.0.1"
RESULTS = BENCH / "results"

# Variables removed from every measured command's environment so that both sides run with
# Python's defaults: this machine exports PYTHONDONTWRITEBYTECODE=1 (every import would compile
# from source) and PYTHONUNBUFFERED=1; PYTHONPATH would leak this checkout into the twistd side.
STRIPPED_PREFIX = "PYTHON"


def measured_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A measured process's environment: ours minus every ``PYTHON*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIX)}
    if extra:
        env.update(extra)
    return env


def stripped_variables() -> list[str]:
    """Names of the ``PYTHON*`` variables set here that measured commands do not get."""
    return sorted(k for k in os.environ if k.startswith(STRIPPED_PREFIX))


def _base_python() -> str:
    """The interpreter the project's venv was made from (so both sides share one CPython build)."""
    cfg = REPO / ".venv" / "pyvenv.cfg"
    if cfg.is_file():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "executable" and Path(value.strip()).is_file():
                return value.strip()
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return str(base) if base.is_file() else sys.executable


def find_tapster_python() -> Path:
    """The project's ``.venv/bin/python``, or this interpreter when it runs this tree's tapster."""
    venv_python = REPO / ".venv" / "bin" / "python"
    if venv_python.is_file():
        return venv_python
    probe = subprocess.run(
        [sys.executable, "-c", "import tapster, sys; sys.stdout.write(tapster.__file__)"],
        capture_output=True,
        text=True,
        env=measured_env(),
        check=False,
    )
    if probe.returncode == 0 and Path(probe.stdout).resolve().is_relative_to(REPO / "src"):
        return Path(sys.executable)
    raise Unavailable(
        f"no tapster interpreter: make the project venv "
        f"(python3 -m venv .venv && .venv/bin/pip install -e '.[test]') in {REPO}"
    )


def ensure_twisted_venv(venv: Path = TWISTED_VENV, version: str = TWISTED_VERSION) -> Path:
    """Return the baseline venv's python, creating the venv with Twisted ``version`` if needed."""
    return ensure_peer_venv(venv, "twisted", version)


def ensure_peer_venv(venv: Path, package: str, version: str) -> Path:
    """Return ``venv``'s python, creating it with ``package==version`` if needed."""
    python = venv / "bin" / "python"
    if python.is_file() and _package_version(python, package) == version:
        return python
    return _install(venv, [f"{package}=={version}"], f"{package} {version}")


def _install(venv: Path, requirements: list[str], what: str) -> Path:
    """Create ``venv`` if missing and pip-install ``requirements`` into it; its python.

    Made with the base interpreter of the project's venv, so both sides share one CPython build.
    """
    python = venv / "bin" / "python"
    print(f"bench: installing {what} into {venv} (first use) ...", file=sys.stderr)
    if not python.is_file():
        made = subprocess.run(
            [_base_python(), "-m", "venv", str(venv)], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            last = (made.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise Unavailable(f"could not create the venv {venv}: {last}")
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *requirements],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise Unavailable(f"could not install {what} into {venv}: {last}")
    return python


#: The servers the ``apps`` case measures tapster against, each pinned; never a dependency
#: of tapster itself. uvicorn gets httptools and uvloop, its fast path; starlette serves the
#: same framework application on every side.
PEERS_VENV = BENCH / ".venv-peers"
PEER_PACKAGES = (
    "uvicorn==0.54.0",
    "httptools",
    "uvloop",
    "granian==2.8.7",
    "gunicorn",
    "starlette",
    "wsproto",
    "websockets",
)


def ensure_peers_venv(venv: Path = PEERS_VENV) -> Path:
    """Return the peer servers' venv python, creating it with ``PEER_PACKAGES`` if needed."""
    python = venv / "bin" / "python"
    probe = "import uvicorn, granian, gunicorn, starlette, httptools, uvloop, wsproto, websockets"
    if not (python.is_file() and _runs(python, probe)):
        _install(venv, list(PEER_PACKAGES), "the peer servers")
        if not _runs(python, probe):
            raise Unavailable(f"the peer servers in {venv} do not import")
    return python


def _runs(python: Path, code: str) -> bool:
    done = subprocess.run([str(python), "-c", code], capture_output=True, env=measured_env())
    return done.returncode == 0


def _twisted_version(python: Path) -> str | None:
    return _package_version(python, "twisted")


def _package_version(python: Path, package: str) -> str | None:
    """The installed version of ``package`` in ``python``'s environment, or None."""
    code = f"from importlib.metadata import version; print(version({package!r}))"
    result = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        env=measured_env(),
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _python_version(python: Path) -> str:
    result = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        env=measured_env(),
        check=False,
    )
    return result.stdout.strip()


class Context:
    """What a case needs to build its runs: interpreters, commands, environment, scratch space.

    The Twisted venv is made only when a case first asks for ``twisted_python`` or
    ``twisted_bin``, so cases that don't need Twisted never touch the network.
    """

    def __init__(
        self,
        *,
        runs: int | None = None,
        warmup: int | None = None,
        quick: bool = False,
        tapster_python: Path | None = None,
        twisted_python: Path | None = None,
        setup_twisted: bool = True,
    ) -> None:
        self.runs = runs
        self.warmup = warmup
        self.quick = quick
        self.repo = REPO
        self._tapster_python = tapster_python
        self._twisted_python = twisted_python
        self._setup_twisted = setup_twisted
        self._twisted_error: str | None = None
        self._peer_errors: dict[str, str] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="tapster-bench-")
        self.tmpdir = Path(self._tmp.name)

    def close(self) -> None:
        """Remove the scratch folder."""
        self._tmp.cleanup()

    @property
    def tapster_python(self) -> Path:
        """The interpreter that runs this working tree's tapster."""
        if self._tapster_python is None:
            self._tapster_python = find_tapster_python()
        return self._tapster_python

    @property
    def twisted_python(self) -> Path:
        """The baseline venv's interpreter (made on first use unless ``--no-setup``)."""
        if self._twisted_error is not None:
            raise Unavailable(self._twisted_error)
        if self._twisted_python is None:
            python = TWISTED_VENV / "bin" / "python"
            if not self._setup_twisted:
                if not python.is_file():
                    raise Unavailable(
                        f"no Twisted venv at {TWISTED_VENV} and --no-setup was given: "
                        "run without --no-setup once to create it"
                    )
                self._twisted_python = python
            else:
                try:
                    self._twisted_python = ensure_twisted_venv()
                except Unavailable as exc:
                    self._twisted_error = str(exc)  # don't retry the install for every run
                    raise
        return self._twisted_python

    def peer_python(self, package: str, version: str) -> Path:
        """The interpreter of ``bench/.venv-PACKAGE`` with ``package==version`` (made on first use).

        With ``--no-setup`` nothing is installed: a missing venv makes the side unavailable.
        """
        venv = BENCH / f".venv-{package}"
        python = venv / "bin" / "python"
        error = self._peer_errors.get(package)
        if error is not None:
            raise Unavailable(error)
        if not self._setup_twisted:
            if not python.is_file():
                raise Unavailable(f"no {package} venv at {venv} and --no-setup was given")
            return python
        try:
            return ensure_peer_venv(venv, package, version)
        except Unavailable as exc:
            self._peer_errors[package] = str(exc)  # don't retry the install for every run
            raise

    @property
    def has_twisted(self) -> bool:
        """Whether the twistd side was used (and so should be described in the results)."""
        return self._twisted_python is not None

    def tapster_bin(self, name: str) -> str:
        """Path of console script ``name`` (e.g. ``tapster``) beside the tapster interpreter."""
        return _script(self.tapster_python, name)

    def twisted_bin(self, name: str) -> str:
        """Path of console script ``name`` (e.g. ``twistd``) in the Twisted venv."""
        return _script(self.twisted_python, name)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a measured command (Python's defaults, no PYTHONPATH) plus ``extra``."""
        return measured_env(extra)

    def describe(self) -> dict[str, Any]:
        """Interpreters and versions for the results file."""
        info: dict[str, Any] = {"tapster_commit": _git_commit()}
        try:
            info["tapster_python"] = str(self.tapster_python)
            info["tapster_python_version"] = _python_version(self.tapster_python)
        except Unavailable as exc:
            info["tapster_python"] = f"unavailable: {exc}"
        if self._twisted_python is not None:
            info["twisted_python"] = str(self._twisted_python)
            info["twisted_python_version"] = _python_version(self._twisted_python)
            info["twisted_version"] = _twisted_version(self._twisted_python)
        return info


def _script(python: Path, name: str) -> str:
    path = python.parent / name
    if path.is_file():
        return str(path)
    raise Unavailable(f"no `{name}` beside {python}: is the package installed in that venv?")


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def machine_info() -> dict[str, Any]:
    """The machine the figures come from: CPUs, memory, kernel, load."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "loadavg": list(os.getloadavg()),
        "wrk": shutil.which("wrk"),
    }
