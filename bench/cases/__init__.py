"""Benchmark cases: one module per case, each exporting ``CASE`` (see ``bench/README.md``).

Modules whose names start with ``_`` are helpers, not cases.
"""
