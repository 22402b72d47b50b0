"""`govnode status` on its own: the plugins' parts and the 100-column layout
(`tests/e2e/test_observability.py` runs it against live and stopped nodes)."""

from __future__ import annotations

import asyncio
from typing import Any

import pluggy

from govnode.cli.status import duration, plugin_reports, render
from govnode.hooks import PROJECT, StatusReport, hookimpl, specs
from govnode.hooks.manager import Plugins


class Counting:
    @hookimpl
    def govnode_status(self) -> StatusReport:
        return StatusReport(lines=["3 things counted"], facts={"things": 3})


class Broken:
    @hookimpl
    def govnode_status(self) -> StatusReport:
        raise RuntimeError("the count table is missing")


def plugins(**registered: object) -> Plugins:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(specs)
    for name, plugin in registered.items():
        pm.register(plugin, name=name)
    return Plugins(pm, [])


def facts() -> dict[str, Any]:
    """What `status_facts.gather` returns for a stopped node with a long queue error."""
    return {
        "at": "2026-11-25T03:50:00Z",
        "node": {"id": "kb", "name": "استانداری کهگیلویه و بویراحمد", "home": "/etc/govnode"},
        "daemon": {"running": False, "detail": "not running: nothing answers"},
        "database": {
            "url": "sqlite:////var/lib/govnode/govnode.db",
            "reachable": True,
            "schema": "current",
            "revision": "0006",
            "size_bytes": 5 * 1024 * 1024,
        },
        "ldap": {"urls": ["ldaps://ldap.kb.gov.ir"], "reachable": True, "bind_seconds": 0.012},
        "queues": [
            {
                "destination": "center",
                "letters": 12,
                "recipients": 14,
                "held": 0,
                "oldest_seconds": 7400,
                "last_error": "unreachable: " + "connection refused " * 10,
            }
        ],
        "peers": [{"id": "center", "url": "https://c.gov.ir:8444", "up": None}],
        "certificates": [
            {
                "name": "server",
                "not_after": "2026-12-10T00:00:00Z",
                "days_left": 14,
                "warning": True,
            },
        ],
        "agency_certificates_expiring": 2,
        "letters_today": {
            "since": "2026-11-24T20:30:00Z",
            "registered": 5,
            "delivered": 9,
            "relayed": 1,
            "failed": 0,
            "expired": 0,
        },
    }


def test_a_failing_plugin_is_named_and_the_others_still_show() -> None:
    found, lines = asyncio.run(
        plugin_reports(None, plugins(counting=Counting(), broken=Broken()))  # type: ignore[arg-type]
    )
    assert found == {
        "counting": {"things": 3},
        "broken": {"error": "failed: RuntimeError: the count table is missing"},
    }
    shown = render(facts(), lines).splitlines()
    assert "Counting       3 things counted" in shown
    assert "Broken         failed: RuntimeError: the count table is missing" in shown


def test_every_line_fits_100_columns_and_warnings_are_marked() -> None:
    shown = render(facts(), {}).splitlines()
    assert all(len(line) <= 100 for line in shown)
    queue = next(line for line in shown if line.lstrip().startswith("center  "))
    assert queue.split()[:5] == ["center", "12", "14", "0", "2"]  # 2 h 3 min
    assert queue.endswith("…")
    assert any("! server  valid until 2026-12-10 (14 days)" in line for line in shown)
    assert any("! 2 agency certificates expire within 30 days" in line for line in shown)
    assert "5.0 MiB" in "\n".join(shown)


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (42, 600, 7400, 4 * 86400 + 7200)] == [
        "42 s",
        "10 min",
        "2 h 3 min",
        "4 d 2 h",
    ]
