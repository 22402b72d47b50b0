"""`govnode status [--json] [--watch SECONDS]`: the operator's dashboard on the server.

Plain text that fits 100 columns (no curses: it works over any SSH session and
in a log), or the same facts as JSON. `--watch` redraws until Ctrl-C. The
plugins' parts (`govnode_status`, e.g. the rollout's progress) are asked on a
reactor, so the whole command runs on one (`plugins.run_async`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.cli.plugins import run_async
from govnode.cli.status_facts import EXPIRY_WARNING_DAYS, gather
from govnode.config import CONFIG_NAME, Config, ConfigError, load_config
from govnode.domain.plugins import StatusReport
from govnode.hooks.api import NodeApi
from govnode.hooks.errors import PluginError
from govnode.hooks.manager import Plugins, load_plugins

WIDTH = 100
CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen
LABEL = 15  # the width of the section names on the left


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "status", help="dashboard: daemon, database, LDAP, queues, peers, certificates"
    )
    parser.add_argument("--json", action="store_true", help="the same facts as JSON")
    parser.add_argument(
        "--watch",
        type=_seconds,
        metavar="SECONDS",
        help="redraw every SECONDS until Ctrl-C",
    )
    parser.set_defaults(run=status)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.5 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("--watch takes 0.5 to 3600 seconds")
    return seconds


def _config(args: argparse.Namespace) -> Config:
    """With the LDAP bind password when this user may read it (to try a bind)."""
    path = args.home / CONFIG_NAME
    try:
        return load_config(path)
    except ConfigError:
        pass
    try:
        return load_config(path, read_secrets=False)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def status(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        plugins = load_plugins(config)
    except (PluginError, ConfigError) as exc:
        raise CliError(str(exc), EXIT_PROBLEM) from None

    async def work(api: NodeApi) -> int:
        from twisted.internet import reactor, task
        from twisted.internet.threads import deferToThread

        while True:
            facts: dict[str, Any] = await deferToThread(gather, config, time.time())
            facts["plugins"], lines = await plugin_reports(api, plugins)
            shown = json.dumps(facts, ensure_ascii=False, indent=2) if args.json else None
            if args.watch is not None:
                sys.stdout.write(CLEAR)
            print(shown if shown is not None else render(facts, lines), flush=True)
            if args.watch is None:
                return 0 if facts["daemon"]["running"] else EXIT_PROBLEM
            await task.deferLater(reactor, args.watch, lambda: None)

    return run_async(config, plugins, work)


async def plugin_reports(
    api: NodeApi, plugins: Plugins
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Each `govnode_status` answer: facts for JSON, lines for the terminal."""
    facts: dict[str, Any] = {}
    lines: dict[str, list[str]] = {}
    for name in plugins.implementers("govnode_status"):
        try:
            outcome = plugins.call_one("govnode_status", name, api=api)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:  # noqa: BLE001 - one plugin must not hide the dashboard
            problem = f"failed: {type(exc).__name__}: {exc}"
            facts[name], lines[name] = {"error": problem}, [problem]
            continue
        if isinstance(outcome, StatusReport):
            facts[name], lines[name] = dict(outcome.facts), list(outcome.lines)
    return facts, lines


# -- as text ----------------------------------------------------------------------


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `4 d 2 h`: how long, for people."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes} min"
    if days == 0:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    if size < 1024:
        return f"{size} bytes"
    scaled, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, bigger
    return f"{scaled:.1f} {unit}"


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def _section(name: str, lines: Sequence[str]) -> list[str]:
    lines = list(lines) or [""]
    head = [f"{name:<{LABEL}}{lines[0]}"]
    return [_fit(line) for line in head + [" " * LABEL + rest for rest in lines[1:]]]


def _moment(text: str | None) -> str:
    if text is None:
        return "never"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def _daemon(d: dict[str, Any]) -> list[str]:
    if not d["running"]:
        return [d.get("detail", "not running")]
    state = "running, healthy" if d["healthy"] else "! running, UNHEALTHY"
    state += f", up {duration(d['uptime_seconds'])} (since {_moment(d['started_at'])})"
    lines = [state, f"admin {d['admin_url']}"]
    failing = {name: how for name, how in d["checks"].items() if how != "ok"}
    lines += [f"! check {name}: {how}" for name, how in failing.items()]
    return lines


def _database(d: dict[str, Any]) -> list[str]:
    if not d["reachable"]:
        return [d["url"], f"! unreachable: {d.get('detail', '')}"]
    schema = d.get("schema", "")
    line = f"reachable, schema {schema} ({d.get('revision')})"
    if schema == "current":
        line += f", {_size(d.get('size_bytes'))}"
    return [d["url"], line if schema == "current" else f"! {line}"]


def _ldap(d: dict[str, Any]) -> list[str]:
    if d.get("reachable") is None:
        bind = d.get("detail", "not tried")
    elif d["reachable"]:
        bind = f"reachable (service account binds in {d['bind_seconds'] * 1000:.0f} ms)"
    else:
        bind = f"! unreachable: {d.get('detail', '')}"
    lines = [", ".join(d["urls"]), bind]
    if "agencies_cached" in d:
        lines.append(
            f"{d['agencies_cached']} agencies cached, last sync {_moment(d.get('last_sync'))}"
        )
    if "node_average_seconds" in d:
        errors = d.get("node_errors") or {}
        counted = ", ".join(f"{kind} {count:.0f}" for kind, count in sorted(errors.items()))
        lines.append(
            f"node's requests: {d['node_average_seconds'] * 1000:.1f} ms on average; "
            f"errors: {counted or 'none'}"
        )
    return lines


def _queues(queues: list[dict[str, Any]] | None) -> list[str]:
    if queues is None:
        return ["unknown (database unreadable)"]
    if not queues:
        return ["nothing waits for another node"]
    rows = [("DESTINATION", "LETTERS", "RECIPIENTS", "HELD", "OLDEST", "LAST ERROR")]
    for q in queues:
        rows.append(
            (
                q["destination"],
                str(q["letters"]),
                str(q["recipients"]),
                str(q["held"]),
                duration(q["oldest_seconds"]),
                q["last_error"] or "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[5]
        for row in rows
    ]


def _peers(peers: list[dict[str, Any]], running: bool) -> list[str]:
    if not peers:
        return ["none configured"]
    lines = []
    for p in peers:
        if p["up"] is None:
            state = "unknown (no hello yet)" if running else "unknown (node not running)"
        elif p["up"]:
            hello = p.get("hello_seconds")
            state = "up" + (f" (hello {hello * 1000:.0f} ms)" if hello is not None else "")
        else:
            state = "! DOWN"
        lines.append(f"{p['id']:<12} {state:<27} {p['url']}")
    return lines


def _certificates(certs: list[dict[str, Any]], agencies_expiring: int | None) -> list[str]:
    lines = []
    for c in certs:
        mark = "! " if c["warning"] else ""
        if "problem" in c:
            lines.append(f"! {c['name']:<7} {c['problem']}")
        elif c["name"] == "CRL":
            lines.append(f"{mark}{c['name']:<7} next update {_moment(c['next_update'])}")
        else:
            note = f"  renew within {EXPIRY_WARNING_DAYS} days" if c["warning"] else ""
            lines.append(
                f"{mark}{c['name']:<7} valid until {_moment(c['not_after'])[:10]} "
                f"({c['days_left']} days){note}"
            )
    if agencies_expiring:
        lines.append(
            f"! {agencies_expiring} agency certificates expire within {EXPIRY_WARNING_DAYS} days"
            " (govnode agency list)"
        )
    return lines


def _today(t: dict[str, Any] | None) -> list[str]:
    if t is None:
        return ["unknown (database unreadable)"]
    return [
        f"{t['registered']} registered, {t['delivered']} delivered, {t['relayed']} relayed, "
        f"{t['failed']} failed, {t['expired']} expired (since midnight in Tehran)"
    ]


def render(facts: dict[str, Any], plugin_lines: dict[str, list[str]]) -> str:
    """The dashboard as lines of at most `WIDTH` characters."""
    node = facts["node"]
    at = datetime.fromisoformat(facts["at"].replace("Z", "+00:00")).astimezone(UTC)
    daemon = facts["daemon"]
    out = [_fit(f"govnode node {node['id']} ({node['name']}), {at:%Y-%m-%d %H:%M:%S} UTC"), ""]
    out += _section("Daemon", _daemon(daemon))
    out += _section("Database", _database(facts["database"]))
    out += _section("LDAP", _ldap(facts["ldap"]))
    out += _section("Queues", _queues(facts["queues"]))
    out += _section("Peers", _peers(facts["peers"], daemon["running"]))
    out += _section(
        "Certificates", _certificates(facts["certificates"], facts["agency_certificates_expiring"])
    )
    out += _section("Letters today", _today(facts["letters_today"]))
    for name, lines in plugin_lines.items():
        out += _section(name.capitalize(), lines)
    return "\n".join(out)
