"""govnode's federation benchmark: letters from kb's agencies to the national center.

Two nodes on loopback made from the shipped configuration (kb with
`default_route = "center"`, center routing back to kb), one slapd for both.
kb's agencies send 2 KB letters to agencies at center: first as fast as
they can (letters accepted per second at kb, and how fast they reach
center's inboxes), then at a fixed rate (latency from submission at kb to
center's inbox when nothing queues). Prints and writes `federation.json`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path

from bench import (
    _drive,
    _node_cpu_seconds,
    _node_pids,
    _peak_rss_mb,
    _percentile,
    fresh_province,
    logged_in_specs,
)

from govnode.testing.home import (
    add_peer,
    configure,
    enroll,
    free_port,
    init_home,
    set_line,
    sync_directory,
)
from govnode.testing.process import NodeProcess

DRAIN_LIMIT = 300.0  # seconds to wait for the relay to deliver what kb accepted


def _arrivals(database: Path, since: float) -> list[tuple[float, float]]:
    """(registered at kb, delivered at center) of the letters center received since."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT l.created_at, r.delivered_at FROM recipients r JOIN letters l"
            " ON l.id = r.letter_id WHERE l.created_at >= ? AND r.delivered_at IS NOT NULL",
            (since,),
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _drain(database: Path, since: float, expected: int) -> list[tuple[float, float]]:
    deadline = time.monotonic() + DRAIN_LIMIT
    arrived = _arrivals(database, since)
    while len(arrived) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        arrived = _arrivals(database, since)
    return arrived


def _phase(
    kb: NodeProcess,
    center_db: Path,
    specs: list[tuple[str, str, str, str, str]],
    processes: int,
    seconds: float,
    rate: float | None,
) -> dict[str, object]:
    since = time.time()
    cpu = {node: _node_cpu_seconds(node.pid) for node in (kb,)}
    results, _ = _drive(kb.api_url, specs, processes, seconds, rate, to_node="center")
    accepted = [r for r in results if r[2] == 201]
    arrived = _drain(center_db, since, len(accepted))
    latencies = sorted(delivered - created for created, delivered in arrived)
    first = min(created for created, _ in arrived) if arrived else since
    last = max(delivered for _, delivered in arrived) if arrived else since
    return {
        "offered_per_second": rate or "as fast as possible",
        "letters_accepted_at_kb": len(accepted),
        "errors": len(results) - len(accepted),
        "accepted_per_second": round(len(accepted) / seconds, 1),
        "submit_ms": {
            f"p{int(q * 100)}": round(_percentile([r[1] for r in accepted], q) * 1000, 2)
            for q in (0.5, 0.99)
        },
        "delivered_at_center": len(arrived),
        "delivered_per_second": round(len(arrived) / max(last - first, 1e-9), 1),
        "submit_to_center_inbox_ms": {
            f"p{int(q * 100)}": round(_percentile(latencies, q) * 1000, 1) for q in (0.5, 0.99)
        },
        "kb_cpu_seconds": round(_node_cpu_seconds(kb.pid) - cpu[kb], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench federation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=20, help="keep-alive clients at kb")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rate", type=float, default=50.0, help="letters/s of the paced phase")
    parser.add_argument("--out", type=Path, default=Path("var/bench-federation"))
    args = parser.parse_args(argv)

    out = args.out.absolute()
    agencies, slapd = fresh_province(out)
    running: list[NodeProcess] = []
    try:
        ports = {"kb": free_port(), "center": free_port()}
        homes = {node: out / node for node in ports}
        configs = {}
        for node, port in ports.items():
            init_home(homes[node], slapd, node_id=node, name=node)
            configs[node] = configure(homes[node], federation=f"127.0.0.1:{port}")
            sync_directory(configs[node])
        add_peer(homes["kb"], configs["center"], f"https://127.0.0.1:{ports['center']}")
        add_peer(homes["center"], configs["kb"], f"https://127.0.0.1:{ports['kb']}")
        set_line(homes["kb"], 'default_route = "center"')
        set_line(homes["center"], 'routes = { kb = "kb" }')
        codes = [a.code for a in agencies if a.phase in (1, 2)][: args.clients]
        files = enroll(configs["kb"], codes, out / "clients")
        for node in ("center", "kb"):
            running.append(NodeProcess(homes[node], log_path=out / f"{node}.log").start())
        center, kb = running
        specs = logged_in_specs(kb.api_url, codes, files)
        center_db = configs["center"].node.data_dir / "govnode.db"
        flood = _phase(kb, center_db, specs, args.processes, args.seconds, None)
        paced = _phase(kb, center_db, specs, args.processes, args.seconds, args.rate)
        figures = {
            "flood": flood,
            "paced": paced,
            "peak_rss_mb": {
                name: round(sum(_peak_rss_mb(p) for p in _node_pids(node.pid)), 1)
                for name, node in (("kb", kb), ("center", center))
            },
        }
        (out / "federation.json").write_text(json.dumps(figures, indent=2))
        print(json.dumps(figures, indent=2, ensure_ascii=False))
        print(f"wrote {out / 'federation.json'}")
        return 0
    finally:
        for process in running:
            process.stop()
        slapd.stop()


if __name__ == "__main__":
    raise SystemExit(main())
