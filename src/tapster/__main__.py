"""``python -m tapster``: the same as the ``tapster`` command."""

from tapster.runner import command

if __name__ == "__main__":
    command()
