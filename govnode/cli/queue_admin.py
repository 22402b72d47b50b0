"""`govnode queue retry|hold|release|expire`: the operator's hand on the federation queue,
in the spirit of Postfix's postqueue and postsuper.

The running node needs no signal: its relay worker looks at the queue every
second, so what is made due now goes within a second, and what is held is
never claimed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from govnode.cli.commands import _database, _load, now
from govnode.cli.errors import EXIT_PROBLEM, CliError
from govnode.config import Config
from govnode.domain.agency import is_node_id
from govnode.domain.ids import is_ulid
from govnode.domain.routing import NoRoute, RoutingTable
from govnode.hooks.actor import operator
from govnode.store import queue_admin
from govnode.store.database import Database
from govnode.store.outbound import LEASE
from govnode.store.queue_admin import Changed, Target


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _next_hop(config: Config) -> Callable[[str], str | None]:
    routing = RoutingTable(
        local=config.node.id,
        routes=config.federation.routes,
        default=config.federation.default_route,
    )

    def next_hop(node: str) -> str | None:
        try:
            return routing.next_hop(node)
        except NoRoute:
            return None

    return next_hop


def _letter_target(letter_id: str) -> Target:
    if not is_ulid(letter_id.upper()):
        raise CliError(f"{letter_id!r} is not a letter id (26 letters and digits, like 01JD3X...)")
    return Target(letter_id=letter_id.upper())


def _peer_target(config: Config, db: Database, peer: str) -> Target:
    """A configured peer, or a node that letters wait for; anything else is a mistake."""
    if not is_node_id(peer):
        raise CliError(f"{peer!r} is not a node id (short lowercase name, like center)")
    peers = [p.id for p in config.peers]
    waiting = db.read_sync(queue_admin.thd_destinations, node_id=config.node.id)
    if peer not in peers and peer not in waiting:
        raise CliError(
            f"{peer!r} is neither a peer of this node ({', '.join(peers) or 'none configured'})"
            f" nor a node that letters wait for ({', '.join(waiting) or 'none'})",
            EXIT_PROBLEM,
        )
    return Target(peer=peer)


def _scope(target: Target) -> str:
    if target.letter_id is not None:
        return f" of letter {target.letter_id}"
    if target.peer is not None:
        return f" for {target.peer}"
    return ""


def _report(done: str, target: Target, changed: Changed, passed_over: str) -> None:
    if changed.recipients:
        line = f"{_count(changed.recipients, 'recipient')} of {_count(changed.letters, 'letter')}"
        line += f" {done}"
    else:
        line = f"nothing {done}: no recipient{_scope(target)} waits for another node"
        if changed.in_flight or changed.passed_over:
            line = f"nothing {done}{_scope(target)}"
    notes = []
    if changed.in_flight:
        notes.append(
            f"{_count(changed.in_flight, 'recipient')} in flight left alone "
            f"(being sent now; try again in {LEASE / 60:g} minutes if still queued)"
        )
    if changed.passed_over:
        notes.append(f"{_count(changed.passed_over, 'recipient')} {passed_over}")
    print("; ".join([line, *notes]))


def _run(fn: Callable[..., Changed], target: Target, config: Config, db: Database) -> Changed:
    try:
        changed: Changed = db.run_sync(
            fn,
            target,
            node_id=config.node.id,
            next_hop=_next_hop(config),
            now=now().timestamp(),
            actor=operator(),
        )
    except queue_admin.UnknownLetter:
        raise CliError(f"no letter {target.letter_id} on this node", EXIT_PROBLEM) from None
    return changed


def retry(args: argparse.Namespace) -> int:
    """`queue retry [PEER|ID]`: waiting letters due now, as Postfix's `postqueue -f`/`-i`."""
    config = _load(args.home, read_secrets=False)
    db = _database(config)
    what: str | None = args.what
    if what is None:
        target = Target()
    elif is_node_id(what):
        target = _peer_target(config, db, what)
    else:
        target = _letter_target(what)
    changed = _run(queue_admin.thd_retry, target, config, db)
    _report("due now", target, changed, "held left held (`govnode queue release`)")
    return 0


def _hold_target(args: argparse.Namespace, config: Config, db: Database) -> Target:
    given = [args.letter_id is not None, args.all, args.peer is not None]
    if sum(given) != 1:
        raise CliError(f"queue {args.queue_command}: give one of ID, --all or --peer PEER")
    if args.letter_id is not None:
        return _letter_target(args.letter_id)
    if args.peer is not None:
        return _peer_target(config, db, args.peer)
    return Target()


def hold(args: argparse.Namespace) -> int:
    """`queue hold ID|--all|--peer PEER`: never sent until released (`postsuper -h`)."""
    config = _load(args.home, read_secrets=False)
    db = _database(config)
    target = _hold_target(args, config, db)
    changed = _run(queue_admin.thd_hold, target, config, db)
    _report("held", target, changed, "already held")
    return 0


def release(args: argparse.Namespace) -> int:
    """`queue release ID|--all|--peer PEER`: held recipients due now (`postsuper -H`)."""
    config = _load(args.home, read_secrets=False)
    db = _database(config)
    target = _hold_target(args, config, db)
    changed = _run(queue_admin.thd_release, target, config, db)
    if changed.recipients:
        _report("released, due now", target, changed, "")
    else:
        print(f"nothing released: no recipient{_scope(target)} is held")
    return 0


def expire(args: argparse.Namespace) -> int:
    """`queue expire ID --reason TEXT`: give up on a letter; the sender sees why."""
    config = _load(args.home, read_secrets=False)
    reason = args.reason.strip()
    if not reason:
        raise CliError("--reason: say why, for the sender's tracking")
    target = _letter_target(args.letter_id)
    db = _database(config)
    assert target.letter_id is not None
    try:
        changed = db.run_sync(
            queue_admin.thd_expire,
            target.letter_id,
            reason,
            node_id=config.node.id,
            now=now().timestamp(),
            actor=operator(),
        )
    except queue_admin.UnknownLetter:
        raise CliError(f"no letter {target.letter_id} on this node", EXIT_PROBLEM) from None
    _report("expired", target, changed, "")
    return 0
