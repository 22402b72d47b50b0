"""The rollout plugin in a real node (slapd, SQLite file, `govnode serve` over mutual
TLS), as agencies and the governorate's operators see it.

One node for the module: phase 1 opened a year ago, phase 2 a hundred days
ago, phase 3 opens in a hundred days. Letters of the past are registered
before the node starts, through a `NodeApi` whose clock is set back, so the
status counts are known exactly. The last test moves phase 3's opening into
the past and restarts the node.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted
from rollout_support import days_from_today, govnode, jalali, node_api
from twisted.internet import defer, task

from govnode.hooks import rfc3339
from govnode.testing.client import AgencyClient
from govnode.testing.home import enable_plugins
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, client_for, make_plugin_node_home
from govnode.testing.slapd import Slapd

DAY = 86400
PHASE_1 = days_from_today(-365)
PHASE_2 = days_from_today(-100)
PHASE_3 = days_from_today(100)
ENROLLED = ("ostandari", "edu", "welfare", "health-univ", "roads", "abfa", "pnu", "edu-dena")
"""Phase 1: the first five; phase 2: abfa, pnu; phase 3: the county office edu-dena."""
NOW = time.time()
LETTERS = (
    # (days ago, sender, recipient): roads and pnu last wrote before the 30-day window.
    (40, "roads", "edu"),
    (40, "pnu", "abfa"),
    (2, "edu", "welfare"),
    (2, "abfa", "pnu"),
    (1, "ostandari", "edu"),
)


def settings(phase_3: date) -> dict[str, object]:
    return {
        "phases": {"1": jalali(PHASE_1), "2": PHASE_2.isoformat(), "3": jalali(phase_3)},
        "active_days": 30,
        "governorate": "ostandari",
    }


@dataclass
class RolloutNode:
    home: NodeHome
    node: NodeProcess

    def client(self, code: str) -> AgencyClient:
        """A client holding `code`'s certificate, logged in as `code`."""
        client = client_for(self.home, self.node, code)
        assert client.login(code, f"demo-{code}").status == 200
        return client


def register_past_letters(home: NodeHome) -> None:
    """The letters of LETTERS, each registered at its moment of the past."""

    async def register() -> None:
        for days_ago, sender, recipient in LETTERS:
            clock = task.Clock()
            clock.advance(NOW - days_ago * DAY)
            async with node_api(home.config, clock) as api:
                await api.send_letter(
                    plugin="rollout-tests", sender=sender, to=[recipient], subject="گزارش"
                )

    pytest_twisted.blockon(defer.Deferred.fromCoroutine(register()))


@pytest.fixture(scope="module")
def rollout(
    tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd
) -> Iterator[RolloutNode]:
    home = make_plugin_node_home(
        tmp_path_factory.mktemp("rollout"), govnode_slapd, {"rollout": settings(PHASE_3)}, ENROLLED
    )
    register_past_letters(home)
    running = RolloutNode(home, NodeProcess(home.path).start())
    yield running
    running.node.stop()


def outbox(client: AgencyClient) -> list[str]:
    answer = client.request("GET", "/api/v1/outbox", query={"limit": "500"})
    assert answer.status == 200, answer.body
    return [letter["id"] for letter in answer.json()["letters"]]


def send(client: AgencyClient, to: list[str], cc: list[str] | None = None) -> Any:
    return client.request(
        "POST",
        "/api/v1/letters",
        json_body={"to": to, "cc": cc or [], "subject": "درخواست گزارش", "body": "..."},
    )


def test_a_closed_phase_office_logs_in_and_looks_up_but_cannot_send(rollout: RolloutNode) -> None:
    with rollout.client("edu-dena") as office:
        found = office.request("GET", "/api/v1/directory/edu-dena")
        assert found.status == 200, found.body
        assert found.json()["x"]["rollout"] == {
            "opens_on": PHASE_3.isoformat(),
            "opens_on_jalali": jalali(PHASE_3),
            "open": False,
        }
        parent = office.request("GET", "/api/v1/directory/edu")
        assert parent.status == 200
        assert parent.json()["x"]["rollout"]["open"] is True

        before = outbox(office)
        refused = send(office, ["edu"])
        assert refused.status == 403, refused.body
        error = refused.json()["error"]
        assert error["code"] == "phase_not_open"
        assert "field" not in error
        assert f"opens on {jalali(PHASE_3)} ({PHASE_3.isoformat()})" in error["message"]
        assert error["message"].startswith("edu-dena joins in phase 3")
        assert outbox(office) == before


def test_a_letter_to_a_closed_phase_office_is_refused_and_not_stored(rollout: RolloutNode) -> None:
    with rollout.client("edu") as edu:
        before = outbox(edu)
        to_office = send(edu, ["edu-dena"])
        assert to_office.status == 403, to_office.body
        assert to_office.json()["error"]["code"] == "phase_not_open"
        assert to_office.json()["error"]["field"] == "to[0]"
        assert "cannot receive letters" in to_office.json()["error"]["message"]
        copy = send(edu, ["welfare", "roads"], cc=["edu-dena"])
        assert (copy.status, copy.json()["error"]["field"]) == (403, "cc[0]")
        typo = send(edu, ["no-such-agency", "edu-dena"])
        assert (typo.status, typo.json()["error"]["code"]) == (422, "unknown_recipient")
        assert typo.json()["error"]["field"] == "to[0]"
        assert outbox(edu) == before
        # The gate stops only what it must: the same sender to an open phase.
        assert send(edu, ["welfare"]).status == 201
    with rollout.client("edu-dena") as office:
        inbox = office.request("GET", "/api/v1/inbox")
        assert inbox.json()["letters"] == []


def test_the_refused_field_names_the_request_position(rollout: RolloutNode) -> None:
    with rollout.client("edu") as edu:
        refused = send(edu, ["welfare", "welfare", "edu-dena"])
    assert refused.json()["error"]["field"] == "to[2]"


def phase_blocks(text: str) -> dict[int, list[str]]:
    """The lines of each `Phase N:` block of the text report."""
    blocks: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        heading = re.match(r"^Phase (\d):", line)
        if heading:
            current = blocks.setdefault(int(heading[1]), [line])
        elif not line.strip():
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def counts(block: list[str]) -> dict[str, int]:
    found = {}
    for line in block[1:]:
        name, number = line.split()[:2]
        found[name] = int(number)
    return found


def test_status_command_counts_each_phase_and_names_the_laggards(rollout: RolloutNode) -> None:
    done = govnode(rollout.home.path, "rollout", "status")
    assert done.returncode == 0, done.stderr
    blocks = phase_blocks(done.stdout)
    assert blocks[1][0] == f"Phase 1: opened {jalali(PHASE_1)} ({PHASE_1.isoformat()})"
    assert counts(blocks[1]) == {"planned": 51, "enrolled": 5, "active": 2}
    assert blocks[3][0] == f"Phase 3: opens {jalali(PHASE_3)} ({PHASE_3.isoformat()}), not open yet"
    assert counts(blocks[2]) == {"planned": 60, "enrolled": 2, "active": 1}
    assert counts(blocks[3]) == {"planned": 70, "enrolled": 1, "active": 0}
    # 5 of 51: two cells of twenty, and 9% (floored: 100% only when all are there).
    assert "  enrolled     5  " + "█" * 2 + "░" * 18 + "   9%" in blocks[1]
    assert "Lagging agencies of the open phases (108):" in done.stdout
    rows = {
        line.split()[1]: line.split()
        for line in done.stdout.splitlines()
        if line.startswith(("  1 ", "  2 ", "  3 "))
    }
    assert rows["roads"][2:5] == ["no", "letters", jalali_of_moment(NOW - 40 * DAY)]
    assert rows["welfare"][2:5] == ["no", "letters", "never"]
    assert rows["agri"][2:5] == ["not", "enrolled", "never"]
    assert rows["pnu"][0] == "2"
    assert not {"edu", "ostandari", "abfa", "edu-dena", "edu-yasuj-1"} & set(rows)


def jalali_of_moment(moment: float) -> str:
    return jalali(datetime.fromtimestamp(moment, UTC).astimezone(ZoneInfo("Asia/Tehran")).date())


def without_time(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in ("at", "at_jalali")}


def test_status_json_and_the_governorate_route_agree(rollout: RolloutNode) -> None:
    done = govnode(rollout.home.path, "rollout", "status", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["node"] == "kb"
    phases = report["phases"]
    assert [(p["phase"], p["open"], p["planned"], p["enrolled"], p["active"]) for p in phases] == [
        (1, True, 51, 5, 2),
        (2, True, 60, 2, 1),
        (3, False, 70, 1, 0),
    ]
    lagging = {lag["code"]: lag for lag in report["lagging"]}
    assert len(report["lagging"]) == 108
    order = [(lag["phase"], lag["code"]) for lag in report["lagging"]]
    assert order == sorted(order)
    assert lagging["roads"]["reason"] == "inactive"
    assert lagging["roads"]["last_letter_at"] == rfc3339(NOW - 40 * DAY)
    assert lagging["pnu"]["last_letter_at"] == rfc3339(NOW - 40 * DAY)
    quiet = lagging["health-univ"]
    assert (quiet["reason"], quiet["last_letter_at"]) == ("inactive", None)
    assert (lagging["agri"]["reason"], lagging["agri"]["status"]) == ("not_enrolled", "pending")

    with rollout.client("ostandari") as governorate:
        answer = governorate.request("GET", "/api/v1/x/rollout/status")
    assert answer.status == 200, answer.body
    assert without_time(answer.json()) == without_time(report)
    with rollout.client("edu") as edu:
        refused = edu.request("GET", "/api/v1/x/rollout/status")
    assert refused.status == 403
    assert refused.json()["error"]["code"] == "forbidden"
    assert "governorate (ostandari)" in refused.json()["error"]["message"]


def test_govnode_status_shows_the_same_progress_as_rollout_status(rollout: RolloutNode) -> None:
    """The operator's dashboard asks the plugin (`govnode_status`): the same counts."""
    report = json.loads(govnode(rollout.home.path, "rollout", "status", "--json").stdout)
    shown = govnode(rollout.home.path, "status", "--json")
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)
    assert facts["daemon"]["running"] is True
    assert facts["plugins"]["rollout"] == {
        "phases": [
            {key: phase[key] for key in ("phase", "open", "planned", "enrolled", "active")}
            for phase in report["phases"]
        ],
        "lagging": len(report["lagging"]),
    }
    text = govnode(rollout.home.path, "status").stdout
    rollout_lines = text[text.index("\nRollout") + 1 :].splitlines()
    assert rollout_lines[0].split()[:3] == ["Rollout", "phase", "1"]
    assert "5/51" in rollout_lines[0]
    assert rollout_lines[2].split()[:4] == ["phase", "3", "closed", "enrolled"]
    assert "108 agencies of open phases lag" in rollout_lines[3]
    assert all(len(line) <= 100 for line in text.splitlines())


def test_once_the_phase_opens_the_office_sends_and_receives(rollout: RolloutNode) -> None:
    """Last: it restarts the node with phase 3 opened yesterday."""
    rollout.node.stop()
    enable_plugins(rollout.home.path, {"rollout": settings(days_from_today(-1))})
    rollout.node = NodeProcess(rollout.home.path).start()
    with rollout.client("edu-dena") as office:
        assert office.request("GET", "/api/v1/directory/edu-dena").json()["x"]["rollout"]["open"]
        sent = send(office, ["edu"])
        assert sent.status == 201, sent.body
    with rollout.client("edu") as edu:
        assert send(edu, ["edu-dena"]).status == 201
