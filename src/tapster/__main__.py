"""``python -m tapster``: the same as the ``tapster`` command."""

import sys

from tapster.runner import main

if __name__ == "__main__":
    sys.exit(main())
