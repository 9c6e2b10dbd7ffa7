"""tapster's benchmark harness: every hot path measured side by side with ``twistd``.

Run ``python -m bench --help``. A case is one module in ``bench/cases/`` exporting ``CASE``;
see ``bench/README.md``. This package re-exports what a case module needs.
"""

from bench._env import TWISTED_VERSION, Context, measured_env
from bench._load import find_wrk, parse_wrk, run_tcp_load, run_wrk
from bench._model import (
    IDLE_RSS_MB,
    LOGINS_PER_S,
    MB_PER_S,
    P50_MS,
    P99_MS,
    PEAK_RSS_MB,
    READY_MS,
    REQUESTS_PER_S,
    ROUND_TRIPS_PER_S,
    STALL_MS,
    WALL_MS,
    Case,
    Comparison,
    Metric,
    Sample,
    Unavailable,
)
from bench._plugins import (
    bundled_tapster_plugins,
    bundled_twisted_plugins,
    tapster_plugin_dir,
    twisted_plugin_dir,
)
from bench._procs import (
    CommandError,
    Server,
    TimedRun,
    cpu_seconds,
    echo_probe,
    free_port,
    http_probe,
    launch,
    read_rss,
    run_timed,
    start_server,
    stop_process,
)

__all__ = [
    "IDLE_RSS_MB",
    "LOGINS_PER_S",
    "MB_PER_S",
    "P50_MS",
    "P99_MS",
    "PEAK_RSS_MB",
    "READY_MS",
    "REQUESTS_PER_S",
    "ROUND_TRIPS_PER_S",
    "STALL_MS",
    "TWISTED_VERSION",
    "WALL_MS",
    "Case",
    "CommandError",
    "Comparison",
    "Context",
    "Metric",
    "Sample",
    "Server",
    "TimedRun",
    "Unavailable",
    "bundled_tapster_plugins",
    "bundled_twisted_plugins",
    "cpu_seconds",
    "echo_probe",
    "find_wrk",
    "free_port",
    "http_probe",
    "launch",
    "measured_env",
    "parse_wrk",
    "read_rss",
    "run_tcp_load",
    "run_timed",
    "run_wrk",
    "start_server",
    "stop_process",
    "tapster_plugin_dir",
    "twisted_plugin_dir",
]
