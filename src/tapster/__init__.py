"""tapster: run Python network services from plugins, on asyncio.

Importing this package is cheap on purpose: it loads nothing but the version,
so that ``tapster --help`` and ``python -c "import tapster"`` stay fast.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
