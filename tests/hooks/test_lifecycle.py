"""Plugins at start-up and shutdown: what stops `govnode serve` (a plugin missing,
broken, refusing its settings or failing to start, named in the message) and
what does not (a failing shutdown)."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path

import pytest

from govnode.testing.home import enable_plugins, set_line
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome, make_plugin_node_home
from govnode.testing.slapd import Slapd
from tests.hooks.support import Record, govnode


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> NodeHome:
    """A home whose plugin configuration each test writes anew (nothing enrolled)."""
    return make_plugin_node_home(tmp_path_factory.mktemp("lifecycle"), govnode_slapd, {}, codes=())


def plugins(
    home: NodeHome, enabled: Mapping[str, Mapping[str, object]], blocked: tuple[str, ...] = ()
) -> None:
    enable_plugins(home.path, enabled)
    quoted = ", ".join(f'"{name}"' for name in blocked)
    set_line(home.path, f"blocked = [{quoted}]")


def refused_start(home: NodeHome) -> str:
    """`govnode serve`, which must stop without serving: its stderr."""
    result = govnode(home.path, "serve", timeout=30)
    assert result.returncode != 0, result.stderr
    assert "govnode ready" not in result.stdout
    assert "Traceback" not in result.stderr
    return result.stderr


def test_an_enabled_plugin_that_is_not_installed_stops_start_up(home: NodeHome) -> None:
    plugins(home, {"nope": {}})

    stderr = refused_start(home)

    assert "'nope' is not installed" in stderr
    assert "plugins.enabled" in stderr


def test_a_plugin_with_a_hook_govnode_lacks_stops_start_up(home: NodeHome) -> None:
    plugins(home, {"probe-broken": {}})

    stderr = refused_start(home)

    assert "probe-broken" in stderr
    assert "govnode_not_a_hook" in stderr


def test_a_plugin_whose_hook_takes_unknown_arguments_stops_start_up(home: NodeHome) -> None:
    plugins(home, {"probe-bad-args": {}})

    stderr = refused_start(home)

    assert "probe-bad-args" in stderr
    assert "govnode_letter_policy" in stderr
    assert "urgency" in stderr


def test_a_plugin_that_fails_to_import_stops_start_up(home: NodeHome) -> None:
    plugins(home, {"probe-import-error": {}})

    stderr = refused_start(home)

    assert "'probe-import-error'" in stderr
    assert "ModuleNotFoundError" in stderr
    assert "govnode_probe_missing_dependency" in stderr


def test_a_plugin_both_enabled_and_blocked_is_refused(home: NodeHome) -> None:
    plugins(home, {"probe": {}}, blocked=("probe",))

    stderr = refused_start(home)

    assert "'probe' is also in plugins.blocked" in stderr


def test_a_failing_startup_hook_stops_start_up_naming_the_plugin(
    home: NodeHome, tmp_path: Path
) -> None:
    record = Record(tmp_path / "calls.jsonl")
    plugins(home, {"probe": {"record": str(record.path), "fail_startup": True}})

    stderr = refused_start(home)

    assert "plugin 'probe' failed to start" in stderr
    assert "the probe was told to fail at start-up" in stderr
    assert len(record.calls("govnode_startup")) == 1  # the primary only: nothing else ran


def test_a_failing_api_routes_hook_stops_start_up_naming_the_plugin(home: NodeHome) -> None:
    plugins(home, {"probe": {"fail_routes": True}})

    stderr = refused_start(home)

    assert "plugin 'probe'" in stderr
    assert "the probe was told to fail offering its routes" in stderr


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"recrod": "calls.jsonl"}, "plugins.probe.recrod: is not a known setting"),
        ({"fail_events": "yes"}, "plugins.probe.fail_events: must be true or false"),
        ({"directory": {"nte": "x"}}, "plugins.probe.directory.nte: is not a known setting"),
        ({"route": "center"}, "plugins.probe.route: must be a table"),
    ],
)
def test_settings_the_plugin_refuses_stop_start_up_and_commands(
    home: NodeHome, settings: dict[str, object], named: str
) -> None:
    plugins(home, {"probe": settings})

    stderr = refused_start(home)
    listed = govnode(home.path, "plugins", "list")

    assert named in stderr
    assert str(home.path / "govnode.toml") in stderr
    assert listed.returncode != 0
    assert named in listed.stderr


def test_a_section_for_a_plugin_not_installed_is_refused(home: NodeHome) -> None:
    plugins(home, {"probe": {}})
    with (home.path / "govnode.toml").open("a", encoding="utf-8") as config:
        config.write('\n[plugins.prbe]\nrecord = "x"\n')

    stderr = refused_start(home)

    assert "plugins.prbe: no plugin named 'prbe' is installed" in stderr


# -- shutdown ----------------------------------------------------------------------


def test_each_process_stops_its_plugins_at_sigterm_even_when_they_fail(
    tmp_path: Path, govnode_slapd: Slapd
) -> None:
    record = Record(tmp_path / "calls.jsonl")
    made = make_plugin_node_home(
        tmp_path,
        govnode_slapd,
        {"probe": {"record": str(record.path), "fail_shutdown": True}},
        codes=(),
    )
    node = NodeProcess(made.path).start()
    pids = [node.pid, *node.secondary_pids()]
    try:
        assert record.calls("govnode_shutdown") == []
        node.signal(signal.SIGTERM)
        code = node.stop(timeout=15)
    finally:
        node.kill()

    assert code == 0  # the failing hook did not keep the node from stopping
    stopped = record.calls("govnode_shutdown")
    assert sorted(call["pid"] for call in stopped) == sorted(pids)
    # The database still answered the plugin while it stopped.
    assert all(call["agencies"] > 0 for call in stopped)
    for pid in pids:
        hooks = [call["hook"] for call in record.calls(pid=pid)]
        assert hooks[-1] == "govnode_shutdown"
        assert hooks.index("govnode_startup") < hooks.index("govnode_shutdown")
    assert "plugin probe failed to shut down" in node.log_tail(200)
