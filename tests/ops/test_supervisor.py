"""The shipped etc/supervisord.conf runs a real node under a real supervisord:
it answers /healthz, and `supervisorctl stop` ends it cleanly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.error import URLError

import pytest

from govnode.testing.home import configure, free_port
from govnode.testing.pytest_plugin import make_node_home
from govnode.testing.slapd import Slapd
from tests.ops.paths import REPO

SHIPPED = REPO / "etc" / "supervisord.conf"
WAIT = 60.0  # seconds, at most, for each step


def tool(name: str) -> str:
    """supervisord and supervisorctl come with the test extra (scripts/setup)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is missing; scripts/setup installs it (pip: supervisor)")
    return found


def program_section(home: Path, log: Path) -> str:
    """The shipped [program:govnode] with this test's paths in place of the server's."""
    text = SHIPPED.read_text(encoding="utf-8")
    govnode = Path(sys.executable).parent / "govnode"
    for server, here in (
        ("/opt/govnode/venv/bin/govnode", str(govnode)),
        ("--home /etc/govnode", f"--home {home}"),
        ("directory=/var/lib/govnode", f"directory={home}"),
        ("/var/log/govnode/govnode.log", str(log)),
        # On a server supervisord runs as root and starts the node as the
        # govnode user; this test runs as whoever runs the suite, so it keeps
        # its own user (supervisord refuses `user=` unless it runs as root).
        ("user=govnode\n", ""),
    ):
        assert server in text, f"{SHIPPED} no longer has {server!r}; update this test"
        text = text.replace(server, here)
    return text


def supervisord_conf(tmp: Path, program: Path) -> str:
    return f"""\
[unix_http_server]
file={tmp / "supervisor.sock"}
chmod=0700

[supervisord]
logfile={tmp / "supervisord.log"}
pidfile={tmp / "supervisord.pid"}
childlogdir={tmp}
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{tmp / "supervisor.sock"}

[include]
files = {program}
"""


def healthz(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return int(response.status)
    except (URLError, OSError):
        return None


def wait_for(check: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise AssertionError(f"{what} within {WAIT} s; {log}:\n{tail}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def supervised(tmp_path: Path, govnode_slapd: Slapd) -> Iterator[tuple[Path, str, Path]]:
    """supervisord running the shipped program for a fresh node home."""
    made = make_node_home(tmp_path, govnode_slapd, codes=("edu",))
    admin = f"127.0.0.1:{free_port()}"
    configure(made.path, api=f"127.0.0.1:{free_port()}", admin=admin)
    program = tmp_path / "govnode.conf"
    program.write_text(program_section(made.path, tmp_path / "govnode.log"), encoding="utf-8")
    conf = tmp_path / "supervisord.conf"
    conf.write_text(supervisord_conf(tmp_path, program), encoding="utf-8")
    supervisord = subprocess.Popen(
        [tool("supervisord"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "GOVNODE_HOME": ""},
    )
    try:
        yield conf, f"http://{admin}", tmp_path
    finally:
        if supervisord.poll() is None:
            supervisord.terminate()  # it stops the node first
            try:
                supervisord.wait(WAIT)
            except subprocess.TimeoutExpired:
                supervisord.kill()
                supervisord.wait(10)


def ctl(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("supervisorctl"), "-c", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def test_supervisord_starts_the_node_and_supervisorctl_stops_it_cleanly(
    supervised: tuple[Path, str, Path],
) -> None:
    conf, admin_url, tmp = supervised
    node_log, supervisor_log = tmp / "govnode.log", tmp / "supervisord.log"

    wait_for(lambda: healthz(admin_url) == 200, "/healthz did not answer 200", node_log)
    wait_for(
        lambda: ctl(conf, "status", "govnode").stdout.split()[1:2] == ["RUNNING"],
        "supervisord did not report govnode RUNNING",
        supervisor_log,
    )
    pid = int(ctl(conf, "pid", "govnode").stdout)
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    processes = [pid, *map(int, children)]
    assert len(processes) == 2, "the home's two API processes: the node and one it started"

    stopped = ctl(conf, "stop", "govnode")

    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert stopped.stdout.strip() == "govnode: stopped"
    status = ctl(conf, "status", "govnode").stdout.split()
    assert status[:2] == ["govnode", "STOPPED"], status
    assert [p for p in processes if alive(p)] == [], "every process of the node has ended"
    assert healthz(admin_url) is None, "nothing answers on the admin port any more"
    # supervisord saw SIGTERM end it with status 0: not SIGKILL after stopwaitsecs.
    said = supervisor_log.read_text(errors="replace")
    assert "stopped: govnode (exit status 0)" in said, said[-2000:]
    log = node_log.read_text(errors="replace")
    assert "govnode ready: kb" in log
    assert "Traceback" not in log, log[-3000:]
    # Off a terminal the node logs JSON lines (`[log] format = "auto"`).
    last = json.loads(log.rstrip().splitlines()[-1])
    assert last["message"] == "Main loop terminated.", log[-2000:]
