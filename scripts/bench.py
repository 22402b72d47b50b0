"""govnode's benchmark: N agencies sending 2 KB letters to each other over mutual TLS.

A node is made from the shipped configuration (`govnode init`, SQLite,
synchronous=FULL) against a private slapd, and driven by a load generator of
its own processes, each holding keep-alive connections. Two phases:

1. throughput: every client sends as fast as it can;
2. the target load: letters at `--target-rate` per second, for submit latency;
3. fixed rate: letters at `--rate` per second, for submit-to-inbox latency.

Prints the figures and writes them as JSON, with a PNG of latency over time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from govnode.domain.agency import Agency
from govnode.testing.client import AgencyClient
from govnode.testing.demo_data import demo_file, load_agencies
from govnode.testing.home import ClientFiles, configure, enroll, init_home, sync_directory
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import DEMO_USERS
from govnode.testing.slapd import Slapd

WARM_UP = 3.0  # seconds for the load processes to start and connect before a phase
BODY = ("گزارش " * 400)[: 2048 - 200]  # with subject and JSON: about 2 KB on the wire


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _node_pids(pid: int) -> list[int]:
    """The node's processes: the primary and the secondaries it started."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def _node_cpu_seconds(pid: int) -> float:
    return sum(_cpu_seconds(each) for each in _node_pids(pid))


def _worker(
    url: str,
    clients: list[tuple[str, str, str, str, str]],
    codes: list[str],
    start_at: float,
    stop_at: float,
    interval: float | None,
    queue: Any,
    seed: int,
    to_node: str | None = None,
) -> None:
    """One load-generator process: a thread per client, each on its own connection.
    Letters go to the other clients' agencies, at `to_node` if given."""
    import threading

    rng = random.Random(seed)
    results: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def run(client_spec: tuple[str, str, str, str, str]) -> None:
        code, ca, cert, key, token = client_spec
        client = AgencyClient(url, Path(ca), Path(cert), Path(key), token=token, timeout=30)
        # Connect (TLS handshake) before the clock starts: agencies keep their
        # connections open, and 50 handshakes at once are not a submission.
        client.request("GET", f"/api/v1/directory/{code}")
        local: list[tuple[float, float, int]] = []
        # Paced clients start at random points of their interval, as independent
        # agencies would; starting together would send the letters in bursts.
        next_at = start_at + (rng.random() * interval if interval else 0.0)
        time.sleep(max(0.0, start_at - time.monotonic()))
        while time.monotonic() < stop_at:
            if interval is not None:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            to = rng.choice([c for c in codes if c != code])
            if to_node is not None:
                to = f"{to}@{to_node}"
            started = time.monotonic()
            response = client.request(
                "POST",
                "/api/v1/letters",
                json_body={"to": [to], "subject": f"بخشنامه {rng.randrange(10**6)}", "body": BODY},
            )
            local.append((time.time(), time.monotonic() - started, response.status))
        client.close()
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=run, args=(spec,)) for spec in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((results, _cpu_seconds(os.getpid())))


def _drive(
    url: str,
    specs: list[tuple[str, str, str, str, str]],
    processes: int,
    seconds: float,
    rate: float | None,
    to_node: str | None = None,
) -> tuple[list[tuple[float, float, int]], float]:
    codes = [spec[0] for spec in specs]
    start_at = time.monotonic() + WARM_UP  # processes started, connections open
    stop_at = start_at + seconds
    queue: Any = multiprocessing.Queue()
    interval = None if rate is None else len(specs) / rate
    workers = [
        multiprocessing.Process(
            target=_worker,
            args=(
                url,
                specs[index::processes],
                codes,
                start_at,
                stop_at,
                interval,
                queue,
                index,
                to_node,
            ),
        )
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    results: list[tuple[float, float, int]] = []
    load_cpu = 0.0
    for _ in workers:
        part, cpu = queue.get()
        results.extend(part)
        load_cpu += cpu
    for worker in workers:
        worker.join()
    return results, load_cpu


def fresh_province(out: Path) -> tuple[list[Agency], Slapd]:
    """An empty `out`, and a started slapd seeded with the demo province's agencies."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    agencies = load_agencies(demo_file("agencies.csv"))
    slapd = Slapd(out / "ldap")
    slapd.seed(agencies, users=DEMO_USERS)
    slapd.start()
    return agencies, slapd


def logged_in_specs(
    api_url: str, codes: list[str], files: dict[str, ClientFiles]
) -> list[tuple[str, str, str, str, str]]:
    """(code, ca, cert, key, token) of each agency, logged in: what the load processes use."""
    specs = []
    for code in codes:
        f = files[code]
        with AgencyClient(api_url, f.ca, f.cert, f.key) as client:
            assert client.login(code, f"demo-{code}").status == 200
            specs.append((code, str(f.ca), str(f.cert), str(f.key), str(client.token)))
    return specs


def _inbox_latency(database: Path, since: float) -> list[float]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT r.delivered_at - l.created_at FROM recipients r JOIN letters l "
            "ON l.id = r.letter_id WHERE l.created_at >= ? AND r.delivered_at IS NOT NULL",
            (since,),
        ).fetchall()
    return [row[0] for row in rows]


def _chart(path: Path, phases: dict[str, list[tuple[float, float, int]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(phases), 1, figsize=(10, 4 * len(phases)), squeeze=False)
    for axis, (name, results) in zip(axes[:, 0], phases.items(), strict=True):
        start = min(at for at, _, _ in results)
        buckets: dict[int, list[float]] = {}
        for at, latency, _ in results:
            buckets.setdefault(int(at - start), []).append(latency * 1000)
        seconds = sorted(buckets)
        for fraction, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            axis.plot(seconds, [_percentile(buckets[s], fraction) for s in seconds], label=label)
        axis.set_title(f"{name}: submit latency per second of the run")
        axis.set_xlabel("seconds")
        axis.set_ylabel("ms")
        axis.legend()
        axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=50, help="keep-alive clients")
    parser.add_argument("--processes", type=int, default=4, help="load-generator processes")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument(
        "--target-rate", type=float, default=1600.0, help="letters/s of phase 2 (submit latency)"
    )
    parser.add_argument("--rate", type=float, default=500.0, help="letters/s of phase 3 (inbox)")
    parser.add_argument(
        "--node-processes",
        type=int,
        default=None,
        help="the node's listen.processes (default: the shipped setting, one per core)",
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)

    out = args.out.absolute()
    agencies, slapd = fresh_province(out)
    node = None
    try:
        home = out / "node"
        init_home(home, slapd)
        # The shipped settings, as `govnode init` writes them (processes: if asked).
        extra = {} if args.node_processes is None else {"processes": args.node_processes}
        config = configure(home, **extra)
        sync_directory(config)
        codes = [a.code for a in agencies if a.phase in (1, 2)][: args.clients]
        files: dict[str, ClientFiles] = enroll(config, codes, out / "clients")
        node = NodeProcess(home, log_path=out / "node.log").start()
        specs = logged_in_specs(node.api_url, codes, files)
        # Warm up (connections, caches), then measure.
        _drive(node.api_url, specs, args.processes, 2.0, None)
        cpu_before, wall_before = _node_cpu_seconds(node.pid), time.time()
        flat, load_cpu = _drive(node.api_url, specs, args.processes, args.seconds, None)
        cpu_flat = _node_cpu_seconds(node.pid) - cpu_before
        accepted = [r for r in flat if r[2] == 201]
        elapsed = max(at for at, _, _ in flat) - min(at for at, _, _ in flat)
        cpu_before = _node_cpu_seconds(node.pid)
        target, _ = _drive(node.api_url, specs, args.processes, args.seconds, args.target_rate)
        cpu_target = _node_cpu_seconds(node.pid) - cpu_before
        target_ok = [r for r in target if r[2] == 201]
        rate_started = time.time()
        paced, _ = _drive(node.api_url, specs, args.processes, args.seconds, args.rate)
        time.sleep(1.0)  # let the last deliveries land
        inbox = _inbox_latency(config.node.data_dir / "govnode.db", rate_started)
        latencies = [latency for _, latency, status in accepted]
        paced_ok = [r for r in paced if r[2] == 201]
        figures = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "processor": platform.processor(),
            },
            "throughput": {
                "clients": len(specs),
                "load_processes": args.processes,
                "seconds": round(elapsed, 1),
                "letters_accepted": len(accepted),
                "errors": len(flat) - len(accepted),
                "letters_per_second": round(len(accepted) / elapsed, 1),
                "submit_ms": {
                    f"p{int(q * 100)}": round(_percentile(latencies, q) * 1000, 2)
                    for q in (0.5, 0.95, 0.99)
                },
                "server_cpu_seconds_per_1000": round(cpu_flat / len(accepted) * 1000, 3),
                "load_generator_cpu_seconds": round(load_cpu, 1),
                "server_cpu_seconds": round(cpu_flat, 1),
                "wall_seconds": round(time.time() - wall_before, 1),
            },
            "target_load": {
                "target_per_second": args.target_rate,
                "letters_accepted": len(target_ok),
                "errors": len(target) - len(target_ok),
                "achieved_per_second": round(len(target_ok) / args.seconds, 1),
                "submit_ms": {
                    f"p{int(q * 100)}": round(_percentile([r[1] for r in target_ok], q) * 1000, 2)
                    for q in (0.5, 0.95, 0.99)
                },
                # Also counts the warm-up (connections, about 3 s with no letters).
                "server_cpu_seconds_per_1000": round(cpu_target / len(target_ok) * 1000, 3),
            },
            "fixed_rate": {
                "target_per_second": args.rate,
                "letters_accepted": len(paced_ok),
                "achieved_per_second": round(len(paced_ok) / args.seconds, 1),
                "submit_ms": {
                    f"p{int(q * 100)}": round(_percentile([r[1] for r in paced_ok], q) * 1000, 2)
                    for q in (0.5, 0.99)
                },
                "submit_to_inbox_ms": {
                    f"p{int(q * 100)}": round(_percentile(inbox, q) * 1000, 2) for q in (0.5, 0.99)
                },
            },
            "server_processes": len(_node_pids(node.pid)),
            "server_peak_rss_mb": round(sum(_peak_rss_mb(p) for p in _node_pids(node.pid)), 1),
        }
        _chart(
            out / "latency.png",
            {
                "throughput": accepted,
                f"{args.target_rate:g}/s": target_ok,
                f"{args.rate:g}/s": paced_ok,
            },
        )
        (out / "bench.json").write_text(json.dumps(figures, indent=2))
        print(json.dumps(figures, indent=2))
        print(f"wrote {out / 'bench.json'} and {out / 'latency.png'}")
        return 0
    finally:
        if node is not None:
            node.stop()
        slapd.stop()


if __name__ == "__main__":
    sys.exit(main())
