"""Each plugin's own records (NodeApi.store): JSON values under keys it chooses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, delete, select

from govnode.store.schema import plugin_data


def thd_get(conn: Connection, plugin: str, key: str) -> Any:
    value = conn.scalar(
        select(plugin_data.c.value).where(plugin_data.c.plugin == plugin, plugin_data.c.key == key)
    )
    return None if value is None else json.loads(value)


def thd_items(conn: Connection, plugin: str, prefix: str = "") -> list[tuple[str, Any]]:
    query = select(plugin_data.c.key, plugin_data.c.value).where(plugin_data.c.plugin == plugin)
    if prefix:
        query = query.where(plugin_data.c.key.startswith(prefix, autoescape=True))
    return [(row.key, json.loads(row.value)) for row in conn.execute(query.order_by("key"))]


def thd_put(conn: Connection, plugin: str, key: str, value: Any, *, now: float) -> None:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    updated = conn.execute(
        plugin_data.update()
        .where(plugin_data.c.plugin == plugin, plugin_data.c.key == key)
        .values(value=text, updated_at=now)
    )
    if not updated.rowcount:
        conn.execute(
            plugin_data.insert().values(plugin=plugin, key=key, value=text, updated_at=now)
        )


def thd_delete(conn: Connection, plugin: str, key: str) -> bool:
    gone = conn.execute(
        delete(plugin_data).where(plugin_data.c.plugin == plugin, plugin_data.c.key == key)
    )
    return bool(gone.rowcount)


def thd_update(
    conn: Connection, plugin: str, key: str, change: Callable[[Any], Any], *, now: float
) -> Any:
    """Read, change and write one value in one transaction; `change(None)` when absent.
    `change` returning None deletes the value."""
    new = change(thd_get(conn, plugin, key))
    if new is None:
        thd_delete(conn, plugin, key)
    else:
        thd_put(conn, plugin, key, new, now=now)
    return new
