"""Each hook of govnode fires at its moment with its documented arguments (specs.py),
seen through the probe plugin in a real node: start-up, the command line,
enrollment, the directory and routing. Letters and routes have modules of their own."""

from __future__ import annotations

import json
from pathlib import Path

from govnode.testing.demo_data import demo_file, load_agencies
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome
from tests.hooks.conftest import NOTE, ClientFactory, probe_settings
from tests.hooks.support import (
    HOOKS,
    Record,
    govnode,
    hook_errors,
    logged_in,
    mailbox_subjects,
    submit,
    unique,
)

DEMO_AGENCIES = len(load_agencies(demo_file("agencies.csv")))


def _pending(client: ClientFactory) -> set[str]:
    edu = logged_in(client("edu"), "edu")
    response = edu.request("GET", "/api/v1/directory", query={"limit": "500"})
    assert response.status == 200, response.body
    return {a["code"] for a in response.json()["agencies"] if a["status"] == "pending"}


# -- start-up ----------------------------------------------------------------------


def test_each_process_configures_then_starts_the_probe_once(
    probe_node: NodeProcess, record: Record
) -> None:
    secondaries = probe_node.secondary_pids()
    assert len(secondaries) == 1  # listen.processes = 2

    for pid in (probe_node.pid, *secondaries):
        calls = [c["hook"] for c in record.calls(pid=pid)]
        # In this order, each once: settings, the command line (`govnode serve`
        # is a command too), the routes (for the listener), then start-up.
        assert calls[:4] == [
            "govnode_configure",
            "govnode_cli_commands",
            "govnode_api_routes",
            "govnode_startup",
        ], calls
        assert calls.count("govnode_configure") == 1
        assert calls.count("govnode_startup") == 1
        (configured,) = record.calls("govnode_configure", pid=pid)
        # Its own section, whole: every key written under [plugins.probe].
        assert configured["section"] == "plugins.probe"
        assert configured["keys"] == sorted(probe_settings(record.path))
        (started,) = record.calls("govnode_startup", pid=pid)
        # The facade answers at start-up: this node, its directory, which process.
        assert started["node"] == "kb"
        assert started["agencies"] == DEMO_AGENCIES
        assert started["primary"] is (pid == probe_node.pid)


# -- the command line --------------------------------------------------------------


def test_a_plugin_command_runs_with_the_home_of_the_node(
    probe_home: NodeHome, client: ClientFactory, record: Record
) -> None:
    pending = _pending(client)

    result = govnode(probe_home.path, "probe", "hello")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"probe hello from kb: {DEMO_AGENCIES} agencies, {len(pending)} pending\n"
    )
    (ran,) = record.calls("cli", command="hello")
    assert ran["primary"] is False  # a command is no process of the node
    # Its settings were read once, before the command ran.
    assert [c["hook"] for c in record.calls(pid=ran["pid"])] == [
        "govnode_configure",
        "govnode_cli_commands",
        "cli",
    ]


def test_a_command_error_of_a_plugin_is_its_message_and_exit_code(probe_home: NodeHome) -> None:
    result = govnode(probe_home.path, "probe", "fail")

    assert result.returncode == 2
    assert result.stderr == "govnode: the probe command failed as asked\n"


def test_plugins_list_shows_the_probe_with_its_version_and_hooks(probe_home: NodeHome) -> None:
    as_json = govnode(probe_home.path, "plugins", "list", "--json")
    table = govnode(probe_home.path, "plugins", "list")

    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"name": "probe", "version": "0.3.1", "distribution": "govnode-probe", "hooks": HOOKS}
    ]
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["PLUGIN", "VERSION", "DISTRIBUTION", "HOOKS"]
    assert row.split(None, 3) == ["probe", "0.3.1", "govnode-probe", ", ".join(HOOKS)]


# -- enrollment --------------------------------------------------------------------


def test_enroll_asks_the_enrollment_hook_about_that_agency(
    probe_home: NodeHome, record: Record, tmp_path: Path
) -> None:
    out = tmp_path / "agri"

    result = govnode(probe_home.path, "agency", "enroll", "agri", "--out", out)

    assert result.returncode == 0, result.stderr
    (asked,) = record.calls("govnode_agency_enrollment", code="agri")
    assert asked["address"] == "agri@kb"
    assert asked["status"] == "pending"  # asked before anything was issued
    assert (out / "cert.pem").exists()


def test_a_refused_enrollment_fails_with_the_reason_and_issues_nothing(
    probe_home: NodeHome, record: Record, tmp_path: Path
) -> None:
    out = tmp_path / "roads"

    result = govnode(probe_home.path, "agency", "enroll", "roads", "--out", out)
    by_plugin = govnode(probe_home.path, "probe", "enroll", "roads")

    assert result.returncode != 0
    assert "roads" in result.stderr
    assert "the probe does not let roads in" in result.stderr
    assert not out.exists()
    # The same hook answers a plugin's enrollment through NodeApi.enroll.
    assert by_plugin.returncode != 0
    assert "the probe does not let roads in" in by_plugin.stderr
    assert len(record.calls("govnode_agency_enrollment", code="roads")) == 2
    listed = govnode(probe_home.path, "agency", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (roads,) = [row for row in json.loads(listed.stdout) if row["code"] == "roads"]
    assert roads["status"] == "pending"
    assert roads["certificate_expires"] is None


def test_a_plugin_enrolls_through_the_api_after_the_enrollment_hook(
    probe_home: NodeHome, client: ClientFactory, record: Record
) -> None:
    result = govnode(probe_home.path, "probe", "enroll", "heritage")

    assert result.returncode == 0, result.stderr
    (asked,) = record.calls("govnode_agency_enrollment", code="heritage")
    assert asked["status"] == "pending"
    edu = logged_in(client("edu"), "edu")
    heritage = edu.request("GET", "/api/v1/directory/heritage").json()
    assert heritage["status"] == "active"
    fingerprint = heritage["certificate_fingerprint_sha256"]
    assert result.stdout == f"probe enrolled heritage: {fingerprint}\n"


def test_a_crashing_enrollment_hook_refuses_the_enrollment_naming_the_plugin(
    probe_home: NodeHome, tmp_path: Path
) -> None:
    out = tmp_path / "natres"

    result = govnode(probe_home.path, "agency", "enroll", "natres", "--out", out)

    assert result.returncode != 0
    assert "enrollment of natres refused" in result.stderr
    assert "plugin probe could not check the enrollment (RuntimeError)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


# -- the directory -----------------------------------------------------------------


def test_directory_entries_carry_what_the_probe_adds(client: ClientFactory) -> None:
    edu = logged_in(client("edu"), "edu")

    one = edu.request("GET", "/api/v1/directory/edu")
    found = edu.request("GET", "/api/v1/directory", query={"q": "edu"})

    assert one.status == 200, one.body
    assert one.json()["x"] == {"probe": {"code": "edu", "status": "active", "note": NOTE}}
    assert found.status == 200, found.body
    agencies = found.json()["agencies"]
    assert agencies
    assert all(a["x"]["probe"]["code"] == a["code"] for a in agencies)


def test_an_entry_the_probe_fails_on_is_answered_without_its_part(
    client: ClientFactory, probe_node: NodeProcess
) -> None:
    edu = logged_in(client("edu"), "edu")
    counted = hook_errors(probe_node.admin_url, "govnode_directory_entry")

    roads = edu.request("GET", "/api/v1/directory/roads")

    assert roads.status == 200, roads.body
    assert roads.json()["code"] == "roads"
    assert "x" not in roads.json()
    assert hook_errors(probe_node.admin_url, "govnode_directory_entry") == counted + 1


# -- routing -----------------------------------------------------------------------


def test_the_route_hook_chooses_the_next_hop_among_the_peers(
    client: ClientFactory, record: Record
) -> None:
    edu = logged_in(client("edu"), "edu")

    routed = submit(edu, to=["edu@fars"])  # the probe: via peer center
    not_a_peer = submit(edu, to=["edu@isfahan"])  # the probe: via "nowhere", no peer
    nobody = submit(edu, to=["edu@shiraz"])  # neither the probe nor the configuration

    assert routed.status == 201, routed.body
    assert routed.json()["recipients"] == [
        {"address": "edu@fars", "kind": "to", "status": "queued"}
    ]
    assert record.calls("govnode_route", destination="fars", hop="center")
    assert not_a_peer.status == 422, not_a_peer.body
    assert not_a_peer.error_code == "unknown_recipient"
    assert record.calls("govnode_route", destination="isfahan", hop="nowhere")
    assert nobody.status == 422, nobody.body
    assert record.calls("govnode_route", destination="shiraz", hop=None)


def test_a_failing_route_hook_leaves_routing_to_the_configuration(
    client: ClientFactory, record: Record, probe_node: NodeProcess
) -> None:
    edu = logged_in(client("edu"), "edu")
    counted = hook_errors(probe_node.admin_url, "govnode_route")

    response = submit(edu, to=["edu@kish"])

    # The configuration has no route to kish (no default route either).
    assert response.status == 422, response.body
    assert response.error_code == "unknown_recipient"
    assert response.json()["error"]["field"] == "to[0]"
    assert record.calls("govnode_route", destination="kish")
    assert hook_errors(probe_node.admin_url, "govnode_route") > counted


# -- letters a plugin sends ---------------------------------------------------------


def test_a_letter_a_plugin_sends_passes_the_policy_and_is_delivered(
    probe_home: NodeHome, client: ClientFactory, record: Record
) -> None:
    welfare = logged_in(client("welfare"), "welfare")
    subject = unique("sent by the probe")

    sent = govnode(probe_home.path, "probe", "send", "edu", "welfare", subject)
    refused = govnode(probe_home.path, "probe", "send", "edu", "welfare", unique("REFUSE"))
    invalid = govnode(probe_home.path, "probe", "send", "edu", "nobody", unique("x"))

    assert sent.returncode == 0, sent.stderr
    (seen,) = record.calls("govnode_letter_policy", subject=subject)
    assert seen["sender"] == "edu@kb"
    assert seen["user"] == "plugin:probe"
    assert seen["to"] == ["welfare@kb"]
    assert subject in mailbox_subjects(welfare, "inbox")
    assert refused.returncode == 1
    assert refused.stderr == (
        "govnode: refused: probe_says_no: the probe does not let this letter through\n"
    )
    # NodeApi.send_letter: a ValueError naming the field when it is no valid letter.
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("govnode: not a letter: to[0]: "), invalid.stderr


# -- the dashboard -----------------------------------------------------------------


def test_govnode_status_shows_what_the_probe_reports(
    probe_home: NodeHome, probe_node: NodeProcess, record: Record
) -> None:
    as_json = govnode(probe_home.path, "status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    facts = json.loads(as_json.stdout)
    assert facts["plugins"] == {"probe": {"agencies": DEMO_AGENCIES}}
    text = govnode(probe_home.path, "status").stdout
    assert f"Probe          {DEMO_AGENCIES} agencies seen by the probe" in text.splitlines()
    assert len(record.calls("govnode_status")) >= 2  # asked by the command, once per run
