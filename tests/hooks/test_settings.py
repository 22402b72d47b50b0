"""`PluginSettings`: a plugin's `[plugins.<name>]` section, read with the node's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from govnode.config.errors import ConfigError
from govnode.hooks import PluginSettings

CONFIG = Path("/etc/govnode/govnode.toml")


def section(table: dict[str, object]) -> PluginSettings:
    return PluginSettings(CONFIG, "plugins.rollout", table)


def test_a_key_the_plugin_did_not_read_is_refused_with_its_path() -> None:
    settings = section({"phases": {"3": "1405/01/01"}, "notfiy": True})
    settings.table_of("phases").keys()

    with pytest.raises(ConfigError) as refused:
        settings.check_unknown()

    assert str(refused.value) == (
        f"{CONFIG}: plugins.rollout.notfiy: is not a known setting (misspelled?)"
    )


def test_a_key_nobody_read_inside_a_table_is_refused_too() -> None:
    settings = section({"notify": {"to": "ostandari", "cc": "edu"}})
    settings.table_of("notify").string("to")

    with pytest.raises(ConfigError) as refused:
        settings.check_unknown()

    assert refused.value.key == "plugins.rollout.notify.cc"


def test_what_is_read_from_a_table_counts_however_often_it_is_asked_for() -> None:
    settings = section({"notify": {"to": "ostandari", "cc": "edu"}, "phases": {"3": "x"}})

    settings.table_of("notify").string("to")
    settings.table_of("notify").string("cc")
    assert settings.table_of("phases").keys() == ["3"]  # a table whose keys are data

    settings.check_unknown()  # nothing left unread


def test_a_typed_read_names_the_key_and_what_it_wanted() -> None:
    settings = section({"notify": {"every": "daily"}})

    with pytest.raises(ConfigError) as refused:
        settings.table_of("notify").integer("every", 1, minimum=1, maximum=30)

    assert str(refused.value) == (
        f"{CONFIG}: plugins.rollout.notify.every: must be a whole number, not str 'daily'"
    )
