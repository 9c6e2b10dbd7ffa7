"""How user input appears in one-line error messages."""

from __future__ import annotations

import pytest

from tapster.usage import Options, UsageError, existing_dir


class Served(Options):
    parameters = [["path", None, None, "A folder to serve.", existing_dir]]


def test_a_long_bad_value_keeps_its_end_visible() -> None:
    path = "/srv/www/" + "releases/2026-11-25/" * 12 + "public/missing-static"
    with pytest.raises(UsageError) as caught:
        Served().parse_options(["--path", path])
    message = str(caught.value)
    assert "\n" not in message
    assert "public/missing-static" in message
    assert "/srv/www/" in message
    assert len(message) < 400


def test_a_short_bad_value_is_shown_whole() -> None:
    with pytest.raises(UsageError) as caught:
        Served().parse_options(["--path", "/no/such/dir"])
    assert "'/no/such/dir'" in str(caught.value)
