"""The abuse limits of `[limits]`: shipped defaults, and errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from govnode.config import ConfigError, load_config
from govnode.config.template import InitValues, render_config
from tests.config.test_load import write_home


def test_the_template_writes_every_limit_with_its_default(tmp_path: Path) -> None:
    limits = load_config(write_home(tmp_path)).limits
    assert (limits.max_connections, limits.max_connections_per_agency) == (1000, 64)
    assert limits.max_requests_per_agency == 32
    assert (limits.max_header_bytes, limits.max_headers, limits.max_url_bytes) == (
        16384,
        100,
        8192,
    )
    assert (limits.handshake_timeout, limits.header_timeout, limits.idle_timeout) == (
        10.0,
        10.0,
        60.0,
    )
    assert (limits.submissions_per_minute, limits.submissions_burst) == (30000, 5000)


def test_a_file_without_the_new_keys_gets_the_same_defaults(tmp_path: Path) -> None:
    text = render_config(InitValues())
    start = text.index("# Abuse limits")
    end = text.index("[plugins]")
    shorter = load_config(write_home(tmp_path, text[:start] + text[end:])).limits
    (tmp_path / "full").mkdir()
    assert shorter == load_config(write_home(tmp_path / "full")).limits


@pytest.mark.parametrize(
    ("old", "new", "key", "says"),
    [
        ("max_connections = 1000", "max_connections = 0", "limits.max_connections", "between"),
        (
            "max_connections_per_agency = 64",
            "max_connections_per_agency = 2000",
            "limits.max_connections_per_agency",
            "not be more than limits.max_connections (1000)",
        ),
        ("max_headers = 100", 'max_headers = "100"', "limits.max_headers", "whole number"),
        ("max_url_bytes = 8192", "max_url_bytes = 10", "limits.max_url_bytes", "between 256"),
        ("header_timeout = 10.0", "header_timeout = true", "limits.header_timeout", "seconds"),
        ("idle_timeout = 60.0", "idle_timeout = 0", "limits.idle_timeout", "between 0.5"),
        (
            "submissions_burst = 5000",
            "submissions_burst = 0",
            "limits.submissions_burst",
            "between 1",
        ),
    ],
)
def test_bad_limits_name_the_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, says: str
) -> None:
    text = render_config(InitValues())
    assert old in text
    path = write_home(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert says in caught.value.message
