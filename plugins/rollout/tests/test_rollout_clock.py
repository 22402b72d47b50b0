"""The gate opens at Tehran midnight of the opening day, by the node's own clock.

A `NodeApi` in the test process over a real home (SQLite file, the directory
synced from slapd) with a `task.Clock`: the letter policy and the directory
entries are asked just before and just after 1405/07/01 00:00 Tehran time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date

import pytest
import pytest_twisted
from govnode_rollout.plugin import plugin
from rollout_support import node_api
from twisted.internet import task

from govnode.domain.letters import Submission, parse_submission
from govnode.hooks import LetterQuery, LetterRefused, NodeApi, day_start
from govnode.hooks.api import draft_of
from govnode.testing.pytest_plugin import NodeHome, make_plugin_node_home
from govnode.testing.slapd import Slapd

SETTINGS = {"phases": {"1": "1404/10/01", "2": "1405/01/15", "3": "1405/07/01"}}
OPENS = day_start(date(2026, 9, 23))  # 1405/07/01 00:00 in Tehran


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> NodeHome:
    # Nobody needs a certificate here: the gate reads the directory's phases.
    return make_plugin_node_home(
        tmp_path_factory.mktemp("rollout-clock"), govnode_slapd, {"rollout": SETTINGS}, codes=()
    )


@asynccontextmanager
async def api_at(home: NodeHome, moment: float) -> AsyncIterator[tuple[NodeApi, task.Clock]]:
    clock = task.Clock()
    clock.advance(moment)
    async with node_api(home.config, clock) as api:
        yield api, clock


def submission(to: list[str], cc: list[str] | None = None) -> Submission:
    return parse_submission(
        {"to": to, "cc": cc or [], "subject": "گزارش ماهانه", "body": "..."},
        local_node="kb",
        max_attachment_bytes=1024,
        with_hash=False,
    )


async def policy(api: NodeApi, sender: str, to: list[str], cc: list[str] | None = None) -> object:
    """What the node's letter policy says: the submission, or the `LetterRefused`."""
    letter = submission(to, cc)
    try:
        return await api.apply_policy(draft_of(f"{sender}@kb", sender, letter), letter)
    except LetterRefused as refused:
        return refused


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_phase_3_is_closed_until_tehran_midnight_then_open(home: NodeHome) -> None:
    async with api_at(home, OPENS - 1) as (api, clock):
        sent = await policy(api, "edu-dena", ["edu"])
        assert isinstance(sent, LetterRefused)
        assert (sent.status, sent.code, sent.field) == (403, "phase_not_open", None)
        assert sent.message == (
            "edu-dena joins in phase 3, which opens on 1405/07/01 (2026-09-23); "
            "it cannot send letters before then"
        )
        received = await policy(api, "edu", ["welfare"], cc=["roads", "edu-dena"])
        assert isinstance(received, LetterRefused)
        assert (received.code, received.field) == ("phase_not_open", "cc[1]")
        assert "edu-dena joins in phase 3" in received.message
        assert "cannot receive" in received.message

        clock.advance(1)  # 00:00:00 of 1405/07/01 in Tehran
        letter = submission(["welfare"], cc=["roads", "edu-dena"])
        assert await api.apply_policy(draft_of("edu@kb", "edu", letter), letter) == letter
        assert isinstance(await policy(api, "edu-dena", ["edu"]), Submission)


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_directory_entries_show_the_opening_by_the_node_clock(home: NodeHome) -> None:
    async with api_at(home, OPENS - 1) as (api, clock):
        office = await api.agency("edu-dena")
        assert office is not None
        assert plugin.govnode_directory_entry(api, office) == {
            "opens_on": "2026-09-23",
            "opens_on_jalali": "1405/07/01",
            "open": False,
        }
        clock.advance(1)
        assert plugin.govnode_directory_entry(api, office)["open"] is True


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_unknown_and_other_nodes_recipients_are_left_to_the_node(home: NodeHome) -> None:
    async with api_at(home, OPENS - 1) as (api, _):
        # A phase-3 office of another node is that node's to gate.
        assert isinstance(await policy(api, "edu", ["edu-dena@center"]), Submission)
        # The node refuses a letter naming an unknown agency of its own (422
        # unknown_recipient): the typo is what the sender must fix first.
        outcome = await policy(api, "edu", ["no-such-agency", "edu-dena"])
        assert isinstance(outcome, Submission)


@pytest_twisted.ensureDeferred  # type: ignore[untyped-decorator]
async def test_a_letter_a_plugin_sends_passes_the_same_gate(home: NodeHome) -> None:
    async with api_at(home, OPENS - 1) as (api, clock):
        with pytest.raises(LetterRefused) as caught:
            await api.send_letter(plugin="tests", sender="edu", to=["edu-dena"], subject="x")
        assert (caught.value.code, caught.value.field) == ("phase_not_open", "to[0]")
        assert await api.letters_all(LetterQuery(sender="edu@kb")) == []
        clock.advance(1)
        sent = await api.send_letter(plugin="tests", sender="edu", to=["edu-dena"], subject="x")
        assert sent.number.startswith("KB-1405-")
