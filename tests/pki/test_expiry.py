"""Which certificates are reported as expiring, and how often the node says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from govnode.pki.expiry import ExpiryWarnings, Held, Standing, describe, log_entries

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


def held(name: str, days: float) -> Held:
    return Held(name, Path(f"/etc/govnode/pki/{name}.pem"), NOW + timedelta(days=days))


def test_standing_30_days_ahead_and_a_week_ahead_for_the_crl() -> None:
    assert held("server", 31).standing(NOW) is Standing.OK
    assert held("server", 29).standing(NOW) is Standing.WARN
    assert held("server", -0.01).standing(NOW) is Standing.EXPIRED
    # The CRL lasts 30 days and the node re-publishes it a week ahead.
    assert held("crl", 20).standing(NOW) is Standing.OK
    assert held("crl", 6).standing(NOW) is Standing.WARN
    unreadable = Held("node", Path("/x/node.pem"), None, problem="cannot read")
    assert unreadable.standing(NOW) is Standing.EXPIRED
    assert describe(unreadable, NOW) == "node certificate /x/node.pem: cannot read"


def test_describe_names_the_date_the_days_left_and_the_command() -> None:
    assert describe(held("server", 12.5), NOW) == (
        "server certificate /etc/govnode/pki/server.pem valid until 2027-03-13 20:00 UTC "
        "(12 days left); renew: govnode cert renew server"
    )
    assert describe(held("node", 100), NOW) == (
        "node certificate /etc/govnode/pki/node.pem valid until 2027-06-09 08:00 UTC "
        "(100 days left)"
    )
    assert describe(held("ca", -3), NOW).endswith(
        "(EXPIRED 3 days ago); renew: none: the CA is valid 10 years; "
        "a new CA means re-enrolling every agency"
    )


def test_the_node_warns_at_start_then_once_a_day_and_at_once_when_it_expires() -> None:
    warnings = ExpiryWarnings()
    entries = log_entries([held("server", 10), held("node", 200)], NOW)
    [said] = warnings.due(entries, NOW)
    assert said.standing is Standing.WARN
    assert said.message.startswith("server certificate")
    # An hour later: nothing new to say.
    later = NOW + timedelta(hours=1)
    assert warnings.due(log_entries([held("server", 10)], later), later) == []
    # A day later: said again.
    tomorrow = NOW + timedelta(days=1)
    assert len(warnings.due(log_entries([held("server", 10)], tomorrow), tomorrow)) == 1
    # Expired an hour after that: an error at once, not tomorrow.
    expired = tomorrow + timedelta(hours=1)
    [error] = warnings.due(log_entries([held("server", 1)], NOW + timedelta(days=2)), expired)
    assert error.standing is Standing.EXPIRED
    # Renewed: quiet, and a later expiry is announced again from the start.
    assert warnings.due(log_entries([held("server", 300)], expired), expired) == []
    assert len(warnings.due(log_entries([held("server", 10)], expired), expired)) == 1
