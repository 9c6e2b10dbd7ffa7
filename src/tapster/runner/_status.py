"""The ``tapster`` command's exit statuses, one name each (docs/runner.md lists them)."""

EXIT_OK = 0
"""Success: a graceful stop, or a command that only prints (``--help``, ``--plugins``...)."""
EXIT_FAILURE = 1
"""Start-up failure: nothing was served (also a broken plugin under ``--plugins``)."""
EXIT_USAGE = 2
"""Usage error: the command line is wrong."""
EXIT_RUNTIME = 3
"""The service was ready, then failed."""
EXIT_FORCED = 130
"""A forced exit: a second ``SIGINT``, or ``SIGINT`` during start-up (128 + SIGINT)."""
