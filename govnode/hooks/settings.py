"""A plugin's own section of `govnode.toml`, read with the same checks as the node's.

`[plugins.rollout]` reaches the rollout plugin's `govnode_configure` as a
`PluginSettings`; every error names the file and the key
(`govnode.toml: plugins.rollout.phases.3: ...`), and a key the plugin did not
read is refused as misspelled once it is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from govnode.config.load import Section
from govnode.domain.calendar import BadDate, parse_day


class PluginSettings(Section):
    """Typed reads of one table: `string`, `boolean`, `integer`, `number`, `strings`,
    `path_of`, `table_of`, `day`; `error(key, message)` for checks of the plugin's own."""

    def __init__(self, path: Path, prefix: str, table: Mapping[str, Any]) -> None:
        super().__init__(path, prefix, table)
        self._tables: dict[str, PluginSettings] = {}

    def table_of(self, name: str) -> PluginSettings:
        """A table inside this one (the same object each time: what it read counts)."""
        table = self._tables.get(name)
        if table is None:
            inner = super().table_of(name)
            table = self._tables[name] = PluginSettings(inner.path, inner.prefix, inner.table)
        return table

    def check_unknown(self) -> None:
        """Refuse a key nobody read, in this table and the tables read from it."""
        super().check_unknown()
        for table in self._tables.values():
            table.check_unknown()

    def keys(self) -> list[str]:
        """The keys written in this table (of a table whose keys are data, like phases)."""
        self.used.update(self.table)
        return list(self.table)

    def day(self, name: str, default: date | None = None) -> date:
        """A calendar day: `"1405/01/15"` (Jalali), `"2026-04-04"` or a TOML date."""
        self.used.add(name)
        if name not in self.table:
            if default is None:
                raise self.error(name, "is required")
            return default
        value = self.table[name]
        if isinstance(value, date):
            return value
        if not isinstance(value, str):
            raise self.error(name, f'must be a date such as "1405/01/15", not {value!r}')
        try:
            return parse_day(value)
        except BadDate as exc:
            raise self.error(name, str(exc)) from None
