"""scripts/install into a temporary root, read as a sysadmin would: the user,
the folders and their owners, the unit, a venv whose govnode runs; a second
run changes nothing; after `govnode init`, the node runs from the installed
venv as the unprivileged govnode user and answers /healthz.

The venv is installed once for the module, offline, from the wheels that
scripts/setup keeps in .venv/wheelhouse (about half a minute).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import pytest

from govnode.pki.files import write_private
from govnode.testing.home import free_port
from govnode.testing.slapd import Slapd
from tests.ops.paths import REPO

INSTALL = REPO / "scripts" / "install"
WHEELHOUSE = REPO / ".venv" / "wheelhouse"
AS_ROOT = os.geteuid() == 0
WAIT = 60.0  # seconds, at most, for the node to be ready


@dataclass(frozen=True)
class Installed:
    root: Path
    first: str  # what the first run said
    again: str  # what an immediate second run said
    after_init: str  # what a run after `govnode init` said
    settled: str  # and one more run after that
    moments: dict[str, tuple[int, int, int, int]]  # before the last run
    uid: int
    gid: int

    @property
    def govnode(self) -> Path:
        return self.root / "opt" / "govnode" / "venv" / "bin" / "govnode"

    @property
    def home(self) -> Path:
        return self.root / "etc" / "govnode"


def install(root: Path) -> str:
    result = subprocess.run(
        [INSTALL, "--prefix", root, "--wheelhouse", WHEELHOUSE],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def moments(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every file's modification time, mode and owners under `root`."""
    found = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        found[str(path)] = (info.st_mtime_ns, info.st_mode, info.st_uid, info.st_gid)
    return found


def account(root: Path, name: str) -> list[str]:
    for line in (root / "etc" / name).read_text().splitlines():
        if line.startswith("govnode:"):
            return line.split(":")
    raise AssertionError(f"no govnode in {root / 'etc' / name}")


def init(installed_govnode: Path, root: Path, slapd: Slapd, api: str, admin: str) -> None:
    """The sysadmin's `govnode init`, with the installed govnode, against a real slapd."""
    password = root.parent / "ldap-password"
    write_private(password, slapd.service_password.encode())
    result = subprocess.run(
        [
            installed_govnode,
            "--home",
            root / "etc" / "govnode",
            "init",
            "--node",
            "kb",
            "--name",
            "استانداری کهگیلویه و بویراحمد",
            "--data-dir",
            root / "var" / "lib" / "govnode",
            "--api-listen",
            api,
            "--admin-listen",
            admin,
            "--ldap-url",
            slapd.url,
            "--ldap-base-dn",
            slapd.base_dn,
            "--ldap-bind-dn",
            slapd.service_dn,
            "--ldap-password-file",
            password,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    password.unlink()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def ports() -> tuple[str, str]:
    return f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def installed(govnode_slapd: Slapd, ports: tuple[str, str]) -> Iterator[Installed]:
    assert WHEELHOUSE.is_dir(), f"{WHEELHOUSE} is missing: run scripts/setup"
    # Not under pytest's 0700 temporary folder: the govnode user must reach it.
    parent = Path(tempfile.mkdtemp(prefix="govnode-install-"))
    parent.chmod(0o755)
    root = parent / "root"
    (root / "etc" / "supervisor" / "conf.d").mkdir(parents=True)  # supervisor is installed
    try:
        first = install(root)
        again = install(root)
        govnode = root / "opt" / "govnode" / "venv" / "bin" / "govnode"
        init(govnode, root, govnode_slapd, *ports)
        share_attachments(root)
        after_init = install(root)
        before = moments(root)
        settled = install(root)
        uid, gid = os.getuid(), os.getgid()  # not root: no user made, files stay ours
        if AS_ROOT:
            uid, gid = int(account(root, "passwd")[2]), int(account(root, "group")[2])
        yield Installed(root, first, again, after_init, settled, before, uid, gid)
    finally:
        shutil.rmtree(parent)


def share_attachments(root: Path) -> Path:
    """Attachments on shared storage outside /var/lib/govnode (`attachments_dir`),
    as several servers on one PostgreSQL have them."""
    shared = root / "srv" / "govnode-attachments"
    shared.mkdir(parents=True)
    config = root / "etc" / "govnode" / "govnode.toml"
    text = config.read_text(encoding="utf-8")
    assert '# attachments_dir = "data/attachments"' in text
    config.write_text(
        text.replace('# attachments_dir = "data/attachments"', f'attachments_dir = "{shared}"'),
        encoding="utf-8",
    )
    return shared


def owner(path: Path) -> tuple[int, int, str]:
    info = path.stat()
    return info.st_uid, info.st_gid, oct(stat.S_IMODE(info.st_mode))


def test_the_first_run_makes_the_user_the_folders_the_venv_and_the_unit(
    installed: Installed,
) -> None:
    root, said = installed.root, installed.first
    assert "next steps:" in said
    assert f"{installed.govnode} --home {installed.home} init" in said
    if not AS_ROOT:
        assert "not root: the govnode user and the owners of files are left out" in said
        return
    assert "created the system user govnode (no login)" in said
    user = account(root, "passwd")
    assert user[5:] == ["/var/lib/govnode", "/usr/sbin/nologin"]
    assert int(user[2]) < 1000, "a system user"
    assert account(root, "group")[2] == user[3]
    govnode = (installed.uid, installed.gid)
    assert owner(root / "var" / "lib" / "govnode")[:2] == govnode
    assert owner(root / "var" / "log" / "govnode") == (*govnode, "0o750")
    venv = root / "opt" / "govnode" / "venv"
    assert owner(venv) == (0, 0, "0o755"), "not the service's to change"
    unit = root / "etc" / "systemd" / "system" / "govnode.service"
    assert unit.read_bytes() == (REPO / "systemd" / "govnode.service").read_bytes()
    assert owner(unit) == (0, 0, "0o644")
    program = root / "etc" / "supervisor" / "conf.d" / "govnode.conf"
    assert program.read_bytes() == (REPO / "etc" / "supervisord.conf").read_bytes()
    for shared in ("govnode.service", "low-ports.conf", "supervisord.conf", "README.md"):
        assert (root / "opt" / "govnode" / "share" / shared).is_file()


def test_a_second_run_changes_nothing_and_says_so(installed: Installed) -> None:
    assert installed.again.splitlines()[-1] == (
        "scripts/install: everything was in place already; nothing changed"
    )
    assert installed.settled.splitlines()[-1] == installed.again.splitlines()[-1]
    assert moments(installed.root) == installed.moments, "not a file touched"


def test_the_installed_govnode_runs_with_its_plugins(installed: Installed) -> None:
    helped = subprocess.run(
        [installed.govnode, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert helped.returncode == 0, helped.stderr
    assert "usage: govnode" in helped.stdout
    python = installed.govnode.with_name("python")
    found = subprocess.run(
        [
            python,
            "-c",
            "from importlib.metadata import entry_points; "
            "print(' '.join(sorted(e.name for e in entry_points(group='govnode.plugins'))))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    # The first-party plugins, ready to enable; not the template for plugin authors.
    assert found.stdout.split() == ["county", "reports", "rollout"]


def test_after_init_a_run_hands_the_home_to_the_govnode_user(installed: Installed) -> None:
    home = installed.home
    assert "gives the new files to the govnode user" in installed.first
    if not AS_ROOT:
        return
    govnode, root_govnode = (installed.uid, installed.gid), (0, installed.gid)
    assert owner(home) == (*root_govnode, "0o750")
    assert owner(home / "govnode.toml") == (*root_govnode, "0o640")
    assert owner(home / "secrets") == (*root_govnode, "0o750")
    assert owner(home / "secrets" / "ldap-bind-password") == (*root_govnode, "0o640")
    assert owner(home / "pki") == (*govnode, "0o700")
    for path in (home / "pki").iterdir():
        assert owner(path)[:2] == govnode, path
    assert owner(home / "pki" / "ca.key")[2] == "0o600", "keys stay private"
    for path in (installed.root / "var" / "lib" / "govnode").rglob("*"):
        assert owner(path)[:2] == govnode, path
    shared = installed.root / "srv" / "govnode-attachments"
    assert f"attachments_dir is {shared}" in installed.after_init  # outside the unit's paths
    assert f"ReadWritePaths={shared}" in installed.after_init
    assert owner(shared)[:2] == govnode
    assert "pki: owner govnode:govnode" in installed.after_init
    assert "systemctl enable --now govnode" in installed.after_init


def healthz(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return int(response.status)
    except (URLError, OSError):
        return None


def test_the_node_runs_from_the_installed_venv_as_the_govnode_user(
    installed: Installed, ports: tuple[str, str]
) -> None:
    """What systemd would start, minus the sandbox: the installed govnode, as the
    unprivileged user, with the owners scripts/install set."""
    node = subprocess.Popen(
        [installed.govnode, "--home", installed.home, "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=installed.root / "var" / "lib" / "govnode",
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"},
        user=installed.uid if AS_ROOT else None,
        group=installed.gid if AS_ROOT else None,
        extra_groups=[] if AS_ROOT else None,
    )
    said: list[str] = []
    try:
        assert node.stdout is not None
        deadline = time.monotonic() + WAIT
        with selectors.DefaultSelector() as selector:
            selector.register(node.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline and node.poll() is None:
                if selector.select(timeout=0.5):
                    said.append(node.stdout.readline())
                    if said[-1].startswith("govnode ready: kb "):
                        break
        assert said, "no output at all"
        assert said[-1].startswith("govnode ready: kb "), "".join(said)
        assert healthz(f"http://{ports[1]}") == 200, "".join(said)
        node.send_signal(signal.SIGTERM)
        rest, _ = node.communicate(timeout=WAIT)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(10)
    assert node.returncode == 0, "".join(said) + rest
    assert "Traceback" not in "".join(said) + rest
    assert "Permission denied" not in "".join(said) + rest
