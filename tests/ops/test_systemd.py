"""systemd/govnode.service: hardened (`systemd-analyze security` exposure at most
2.0), valid (`systemd-analyze verify`), and writable exactly where the node writes.

No test starts it under systemd: the test machine (a container) has no running
systemd. `systemd-analyze` reads unit files offline; scripts/setup installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from govnode.config import CONFIG_NAME, parse_config
from govnode.config.template import InitValues, render_config
from tests.ops.paths import REPO

UNIT = REPO / "systemd" / "govnode.service"
LOW_PORTS = REPO / "systemd" / "low-ports.conf"
MAX_EXPOSURE = 2.0
INSTALLED_GOVNODE = "/opt/govnode/venv/bin/govnode"  # where scripts/install puts it
# What the unit leaves open on purpose (the unit's comments say why).
ACCEPTED_GAPS = {
    "PrivateNetwork=",  # a network daemon
    "RestrictAddressFamilies=~AF_(INET|INET6)",  # agencies and peers
    "RestrictAddressFamilies=~AF_UNIX",  # PostgreSQL's and LDAP's local sockets
    "IPAddressDeny=",  # agencies connect from the network
    "MemoryDenyWriteExecute=",  # pyOpenSSL's cffi callbacks
    "RootDirectory=/RootImage=",  # runs from /opt/govnode, not an image
    "DeviceAllow=",  # char-rtc:r, which ProtectClock= itself adds
}
LOW_PORT_GAPS = {
    "AmbientCapabilities=",
    "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
    "PrivateUsers=",
}


def analyze(*args: str | Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is missing; scripts/setup installs it (Debian: systemd)")
    return subprocess.run(
        [tool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def security(*args: str | Path) -> tuple[float, set[str]]:
    """The overall exposure and the names of the checks that failed (✗)."""
    result = analyze("security", "--offline=true", "--no-pager", *args)
    assert result.returncode == 0, result.stderr
    score = re.search(r"Overall exposure level for govnode\.service: (\d+\.\d+)", result.stdout)
    assert score is not None, result.stdout
    gaps = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("✗")}
    return float(score.group(1)), gaps


def settings(path: Path) -> dict[str, list[str]]:
    """`Key=value` lines of a unit file; a key may repeat (SystemCallFilter=)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_scores_at_most_2_and_leaves_open_only_what_a_network_daemon_needs() -> None:
    score, gaps = security(UNIT)
    assert score <= MAX_EXPOSURE
    assert gaps <= ACCEPTED_GAPS, f"new gaps: {sorted(gaps - ACCEPTED_GAPS)}"
    assert "PrivateNetwork=" in gaps, "a gap the unit has for sure: the parsing works"


def test_the_low_ports_drop_in_adds_only_binding_low_ports(tmp_path: Path) -> None:
    """Installed as a drop-in, the way the README says."""
    units = tmp_path / "etc" / "systemd" / "system"
    (units / "govnode.service.d").mkdir(parents=True)
    shutil.copy(UNIT, units / "govnode.service")
    shutil.copy(LOW_PORTS, units / "govnode.service.d" / "low-ports.conf")

    score, gaps = security("--root", tmp_path, "govnode.service")

    assert score <= MAX_EXPOSURE
    assert gaps - ACCEPTED_GAPS == LOW_PORT_GAPS
    assert settings(LOW_PORTS)["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]


def test_systemd_analyze_verify_accepts_the_unit_and_its_drop_in(tmp_path: Path) -> None:
    """verify insists that ExecStart= exists: the one path that only exists after
    scripts/install becomes this test's own govnode."""
    unit = tmp_path / "govnode.service"
    text = UNIT.read_text(encoding="utf-8")
    assert f"ExecStart={INSTALLED_GOVNODE} serve\n" in text
    unit.write_text(text.replace(INSTALLED_GOVNODE, str(Path(sys.executable).parent / "govnode")))
    (tmp_path / "govnode.service.d").mkdir()
    shutil.copy(LOW_PORTS, tmp_path / "govnode.service.d" / "low-ports.conf")

    verified = analyze("verify", unit)
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")

    # The same check notices a mistake (a misspelt key is only a warning).
    unit.write_text(unit.read_text(encoding="utf-8").replace("PrivateTmp=", "PrivateTemp="))
    mistaken = analyze("verify", unit)
    assert "Unknown key 'PrivateTemp'" in mistaken.stdout + mistaken.stderr


def test_the_service_may_write_where_the_node_writes_and_nowhere_in_its_config() -> None:
    """A home made by `govnode init --home /etc/govnode --data-dir /var/lib/govnode`."""
    unit = settings(UNIT)
    assert unit["Environment"] == ["GOVNODE_HOME=/etc/govnode PYTHONUNBUFFERED=1"]
    assert unit["ExecStart"] == [f"{INSTALLED_GOVNODE} serve"]
    assert (unit["User"], unit["Group"]) == (["govnode"], ["govnode"])
    assert unit["ProtectSystem"] == ["strict"]
    writable = [Path(p) for value in unit["ReadWritePaths"] for p in value.split()]
    writable += [Path("/var/lib") / name for name in unit["StateDirectory"]]
    values = InitValues(data_dir="/var/lib/govnode", database_url="sqlite:////var/lib/govnode/x.db")
    home = Path("/etc/govnode")
    config = parse_config(
        home / CONFIG_NAME, tomllib.loads(render_config(values)), read_secrets=False
    )

    def may_write(path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in writable)

    # The data, the database, the CRL the node re-publishes (and its lock beside
    # it), the signing key it makes when missing.
    database = Path(config.database.url.removeprefix("sqlite:///"))
    for path in (config.node.data_dir, database, config.tls.crl, config.tls.signing_key):
        assert may_write(path), path
    # Not its configuration, its LDAP password, nor the programs. (All of pki/ is
    # writable: the CRL is replaced by a rename inside it.)
    password = home / values.ldap_password_file
    for path in (home / CONFIG_NAME, password, Path(INSTALLED_GOVNODE)):
        assert not may_write(path), path


WX_PROBE = """
from OpenSSL import SSL
from govnode.pki.tls import _verify_or_pinned

def writable_executable():
    with open("/proc/self/maps") as maps:
        return {line for line in maps if "w" in line.split()[1] and "x" in line.split()[1]}

before = writable_executable()
SSL.Context(SSL.TLS_METHOD).set_verify(SSL.VERIFY_PEER, _verify_or_pinned(frozenset()))
print(len(writable_executable() - before))
"""


def test_memory_deny_write_execute_stays_off_because_tls_callbacks_need_it() -> None:
    """The verify callback for pinned peers (and Twisted's own) is a cffi callback
    in writable+executable memory, which MemoryDenyWriteExecute=yes forbids. When
    this fails, pyOpenSSL no longer needs it: turn the option on."""
    assert "MemoryDenyWriteExecute" not in settings(UNIT)
    probe = subprocess.run(
        [sys.executable, "-c", WX_PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(probe.stdout) >= 1, "a new writable and executable mapping"
