"""The demo province (`scripts/run`): node kb and the national center, peers.

Each node has a private slapd and its enrolled agencies. State lives under
`var/demo/` (or `--dir`), one folder per node: `kb/ca.pem` (trust it to
reach kb), `kb/clients/<code>/{cert,key}.pem`, `kb/node/` (the node home),
`kb/ldap/` (the directory), `kb/node.log`; the same under `center/`.
Running it again reuses the node homes and their enrollments.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from govnode.config import CONFIG_NAME, Config
from govnode.domain.agency import AgencyStatus
from govnode.domain.calendar import jalali_day
from govnode.store import directory
from govnode.store.database import Database
from govnode.testing.demo_data import demo_file, load_agencies
from govnode.testing.home import (
    add_peer,
    configure,
    enable_plugins,
    enroll,
    free_port,
    init_home,
    set_line,
    sync_directory,
)
from govnode.testing.process import NodeFailedToStart, NodeProcess
from govnode.testing.pytest_plugin import DEMO_USERS
from govnode.testing.slapd import Slapd

NODE_NAMES = {"kb": "استانداری کهگیلویه و بویراحمد", "center": "مرکز ملی شبکه دولت"}
CENTER_PORT_OFFSET = 10  # center's ports beside kb's: 8453, 8091, 8454
DEMO_PLUGINS: dict[str, dict[str, object]] = {
    "example": {"forbidden_words": ["پیش‌نویس"]},
    # Phase 3 (the county offices) opened too: the demo enrolls one and sends from it.
    "rollout": {
        "phases": {"1": "1404/10/01", "2": "1405/01/15", "3": "1405/07/01"},
        "governorate": "ostandari",
    },
    "county": {"copy_parent": True},
    "reports": {},
}
"""The first-party plugins node kb runs in the demo, with their settings."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/run", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("var/demo"), help="state folder")
    parser.add_argument("--port", type=int, default=8443, help="agency API port (0: any free)")
    parser.add_argument(
        "--admin-port", type=int, default=8081, help="admin listener port (0: any free)"
    )
    return parser


def _pending_enrollments(config: Config, clients: Path) -> list[str]:
    """Phase 1 and 2 agencies without a valid certificate on both sides."""
    db = Database(config.database.url)
    try:
        records = db.run_sync(directory.thd_all, now=datetime.now(UTC).timestamp())
    finally:
        db.stop()
    return [
        record.agency.code
        for record in records
        if record.agency.phase in (1, 2)
        and (
            record.status is not AgencyStatus.ACTIVE
            or not (clients / record.agency.code / "key.pem").exists()
        )
    ]


def prepare_node(
    root: Path,
    node_id: str,
    slapd: Slapd,
    api_port: int,
    admin_port: int,
    federation_port: int = 8444,
    plugins: dict[str, dict[str, object]] | None = None,
) -> Config:
    home = root / "node"
    if not (home / CONFIG_NAME).exists():
        shutil.rmtree(home, ignore_errors=True)  # a half-made home from an interrupted run
        init_home(home, slapd, node_id=node_id, name=NODE_NAMES[node_id])
    config = configure(
        home,
        urls=[slapd.url],
        api=f"127.0.0.1:{api_port}",
        admin=f"127.0.0.1:{admin_port}",
        federation=f"127.0.0.1:{federation_port}",
    )
    if plugins is not None:
        config = enable_plugins(home, plugins)
    agencies = sync_directory(config)
    pending = _pending_enrollments(config, root / "clients")
    if pending:
        print(f"enrolling {len(pending)} agencies of phases 1 and 2 ...", flush=True)
        enroll(config, pending, root / "clients")
    shutil.copyfile(config.tls.ca_cert, root / "ca.pem")
    print(
        f"node {node_id}: {agencies} agencies in the directory, certificates in {root / 'clients'}",
        flush=True,
    )
    return config


def _examples(root: Path, api_url: str) -> str:
    d = root / "clients" / "edu"
    tls = f"--cacert {root / 'ca.pem'} --cert {d / 'cert.pem'} --key {d / 'key.pem'}"
    node = root / "node"
    now = datetime.now(UTC).timestamp()
    today = jalali_day(now)
    month_start = today[:8] + "01"
    reply_by = jalali_day(now + 7 * 86400)
    return f"""
Try it (demo-only credentials: each agency's password is demo-<code>):
  # log in as the education directorate (edu) and keep the token
  TOKEN=$(curl -s {tls} -H 'Content-Type: application/json' \\
    -d '{{"username": "edu", "password": "demo-edu"}}' {api_url}/api/v1/auth/token \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  # search the directory in Persian (Arabic ي and ك are fine too)
  curl -s {tls} -H "Authorization: Bearer $TOKEN" -G \\
    --data-urlencode 'q=بهزیستی' {api_url}/api/v1/directory
  # one agency, with its certificate fingerprint
  curl -s {tls} -H "Authorization: Bearer $TOKEN" {api_url}/api/v1/directory/welfare
  # send an official letter to the welfare directorate, copy to roads
  curl -s {tls} -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"to": ["welfare"], "cc": ["roads"], "subject": "درخواست آمار", "body": "با سلام"}}' \\
    {api_url}/api/v1/letters
  # or with the bundled client (welfare reads it, edu follows it):
  echo demo-edu > /tmp/edu.pw
  export GOVNODE_CLIENT=/tmp/edu.json
  .venv/bin/govnode client login edu --url {api_url} --ca {root / "ca.pem"} \\
    --cert {d / "cert.pem"} --key {d / "key.pem"} --password-file /tmp/edu.pw
  .venv/bin/govnode client send --to welfare --subject "گزارش" --attach README.md
  .venv/bin/govnode client outbox
  # a letter to the national center's Presidential Office, through kb's relay
  .venv/bin/govnode client lookup presidency@center   # from center's directory
  .venv/bin/govnode client send --to presidency@center --subject "گزارش استان"
  .venv/bin/govnode client outbox      # delivered at center within seconds
  .venv/bin/govnode --home {root / "node"} peers   # is center reachable, and who it is
  # stop center: kb keeps accepting and queues; start it again and they flow
  pkill -f "{root.parent / "center" / "node"} serve"
  .venv/bin/govnode --home {root / "node"} queue   # what waits for other nodes
Plugins (.venv/bin/govnode --home {node} plugins list):
  # the phases of joining, as the governorate sees them (also /api/v1/x/rollout/status)
  .venv/bin/govnode --home {node} rollout status
  # a county office enrolled through its parent: edu asks for edu-dena with a CSR ...
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
    -keyout /tmp/edu-dena.key -out /tmp/edu-dena.csr -subj /CN=edu-dena
  python3 -c 'import json,sys; print(json.dumps({{"office":"edu-dena","csr":sys.stdin.read()}}))' \\
    < /tmp/edu-dena.csr | curl -s {tls} -H "Authorization: Bearer $TOKEN" \\
    -H 'Content-Type: application/json' --data-binary @- {api_url}/api/v1/x/county/requests
  # ... the operator approves ...
  .venv/bin/govnode --home {node} county pending
  .venv/bin/govnode --home {node} county approve edu-dena
  # ... edu takes the certificate to the office, which writes to the center (edu gets a copy)
  curl -s {tls} -H "Authorization: Bearer $TOKEN" {api_url}/api/v1/x/county/requests/edu-dena \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["certificate"], end="")' \\
    > /tmp/edu-dena.pem
  echo demo-edu-dena > /tmp/edu-dena.pw
  GOVNODE_CLIENT=/tmp/edu-dena.json .venv/bin/govnode client login edu-dena --url {api_url} \\
    --ca {root / "ca.pem"} --cert /tmp/edu-dena.pem --key /tmp/edu-dena.key \\
    --password-file /tmp/edu-dena.pw
  GOVNODE_CLIENT=/tmp/edu-dena.json .venv/bin/govnode client send --to presidency@center \\
    --subject "گزارش آموزش و پرورش دنا" --reply-by {reply_by}
  curl -s {tls} -H "Authorization: Bearer $TOKEN" {api_url}/api/v1/x/county/letters
  # time and paper saved this month, per phase, and charts of it
  .venv/bin/govnode --home {node} reports summary --from {month_start} --to {today} --by phase
  .venv/bin/govnode --home {node} reports chart --from {month_start} --to {today} \\
    --out /tmp/govnode-charts
Press Ctrl-C to stop.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.dir.absolute() / "kb"
    root.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    center_root = args.dir.absolute() / "center"
    center_root.mkdir(parents=True, exist_ok=True)
    slapd = Slapd(root / "ldap")
    slapd.seed(load_agencies(demo_file("agencies.csv")), users=DEMO_USERS)
    center_slapd = Slapd(center_root / "ldap", base_dn="dc=center,dc=gov,dc=ir")
    center_slapd.seed(load_agencies(demo_file("center-agencies.csv")))
    slapd.start()
    center_slapd.start()
    # (api, admin, federation) of each node; any free ones with --port 0.
    offset = CENTER_PORT_OFFSET
    kb_ports = (args.port, args.admin_port, args.port + 1 if args.port else free_port())
    center_ports = (
        args.port + offset if args.port else 0,
        args.admin_port + offset if args.admin_port else 0,
        args.port + 1 + offset if args.port else free_port(),
    )
    nodes = [
        NodeProcess(center_root / "node", log_path=center_root / "node.log"),
        NodeProcess(root / "node", log_path=root / "node.log"),
    ]
    try:
        try:
            kb = prepare_node(root, "kb", slapd, *kb_ports, plugins=DEMO_PLUGINS)
            center = prepare_node(center_root, "center", center_slapd, *center_ports)
        except KeyError as exc:  # a home from an older govnode lacks a setting the demo sets
            print(
                f"scripts/run: {exc.args[0]}; {args.dir} was made by an older govnode:"
                " delete it (or give another --dir) and run again",
                file=sys.stderr,
            )
            return 1
        add_peer(root / "node", center, f"https://127.0.0.1:{center_ports[2]}")
        add_peer(center_root / "node", kb, f"https://127.0.0.1:{kb_ports[2]}")
        set_line(root / "node", 'default_route = "center"')
        set_line(center_root / "node", 'routes = { kb = "kb" }')
        for node, name in zip(nodes, ("center", "kb"), strict=True):
            try:
                node.start()
            except NodeFailedToStart as exc:
                print(f"scripts/run: node {name}: {exc}", file=sys.stderr)
                if "already in use" in str(exc):
                    print(
                        "scripts/run: another program holds the port; try --port 0 --admin-port 0",
                        file=sys.stderr,
                    )
                return 1
            print(f"govnode ready: {name} {node.api_url} admin={node.admin_url}", flush=True)
        print(_examples(root, nodes[1].api_url), flush=True)
        watched = dict(zip(("center", "kb"), nodes, strict=True))
        while not stop.wait(1.0):
            for name, node in list(watched.items()):
                code = node.exit_code()
                if code is None:
                    continue
                if name == "center" and code == 0:  # stopped on purpose (SIGTERM)
                    del watched[name]
                    print(
                        "scripts/run: center stopped; kb keeps accepting letters for it and"
                        " queues them (govnode queue). Start it again, in another terminal:\n"
                        f"  .venv/bin/govnode --home {center_root / 'node'} serve",
                        flush=True,
                    )
                    continue
                print(
                    f"scripts/run: node {name} exited; its log:\n{node.log_tail()}",
                    file=sys.stderr,
                )
                return 1
        print("stopping ...", flush=True)
        return 0
    finally:
        for node in nodes:
            node.stop()
        slapd.stop()
        center_slapd.stop()


if __name__ == "__main__":
    sys.exit(main())
