"""`govnode serve`: the daemon in the foreground, for systemd and supervisord."""

from __future__ import annotations

import gc
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger, globalLogBeginner

from govnode import logs
from govnode.config import Config
from govnode.hooks.errors import PluginError
from govnode.hooks.manager import Plugins
from govnode.locks import AlreadyHeld, hold
from govnode.processes import (
    SECONDARY_READY,
    Secondaries,
    die_with_parent,
    use_shared_metrics,
    watch_parent,
)
from govnode.runtime import write_running

_log = Logger()


def serve(
    config: Config, *, home: Path, secondary_of: int | None = None, plugins: Plugins | None = None
) -> int:
    """Run the node until SIGTERM; with `listen.processes` > 1, the primary of several.

    `secondary_of`: this process is a secondary that this primary process started.
    """
    from twisted.internet import reactor as default_reactor

    reactor: Any = default_reactor
    # `[log]`: JSON lines or text; per-letter details are debug (the audit log
    # holds every letter).
    globalLogBeginner.beginLoggingTo(
        [logs.observer(config.log, sys.stderr)], redirectStandardIO=False
    )
    several = config.listen.processes > 1
    if secondary_of is None:
        lock = config.node.data_dir / "serve.lock"
        try:
            hold(lock)  # for the life of this process
        except AlreadyHeld:
            print(f"govnode: another govnode serve holds {lock}; stop it first", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"govnode: cannot take {lock}: {exc.strerror}", file=sys.stderr)
            return 1
    if secondary_of is not None:
        die_with_parent()
        reactor.callWhenRunning(watch_parent, reactor, secondary_of)
    home = home.absolute()  # the secondaries are started with it
    if several:
        use_shared_metrics(config.node.data_dir / "metrics", fresh=secondary_of is None)

    from govnode.node import Node

    try:
        node = Node(config, reactor=reactor, secondary=secondary_of is not None, plugins=plugins)
    except PluginError as exc:  # a plugin's routes do not fit
        print(f"govnode: {exc}", file=sys.stderr)
        return 1
    secondaries: Secondaries | None = None
    outcome = {"code": 0}

    async def start() -> None:
        nonlocal secondaries
        node.startService()
        try:
            api_url, admin_url = await node.ready()
            if secondary_of is not None:
                _freeze_startup_objects()
                print(SECONDARY_READY, flush=True)
                return
            if several:
                assert node.shared_api is not None
                secondaries = Secondaries(
                    reactor,
                    home=home,
                    api_socket=node.shared_api.fileno,
                    count=config.listen.processes - 1,
                )
                secondaries.setServiceParent(node)
                await secondaries.ready()
        except Exception as exc:  # noqa: BLE001 - any failure to listen ends the daemon
            _log.critical("cannot start: {error}", error=str(exc))
            outcome["code"] = 1
            await node.stopService()
            reactor.stop()
            return
        _freeze_startup_objects()
        federation_url = await node.federation_url()
        federation = f" federation={federation_url}" if federation_url else ""
        processes = f" processes={config.listen.processes}" if several else ""
        _tell_status(config, api_url, admin_url)
        print(
            f"govnode ready: {config.node.id} {api_url} admin={admin_url}{federation}{processes}",
            flush=True,
        )

    def reload_certificates(signum: int, _frame: FrameType | None) -> None:
        reactor.callFromThread(_reload, node)
        if secondaries is not None:
            reactor.callFromThread(secondaries.forward, signum)

    signal.signal(signal.SIGHUP, reload_certificates)
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: node.stopService() if node.running else None
    )
    reactor.callWhenRunning(
        lambda: defer.Deferred.fromCoroutine(start()).addErrback(
            lambda failure: _log.failure("start-up failed", failure)
        )
    )
    reactor.run()
    return outcome["code"]


def _tell_status(config: Config, api_url: str, admin_url: str) -> None:
    """Where `govnode status` finds this node (its config may say port 0)."""
    try:
        write_running(
            config.node.data_dir, node_id=config.node.id, api_url=api_url, admin_url=admin_url
        )
    except OSError as exc:
        _log.warn("govnode status will not find this node: {error}", error=str(exc))


def _freeze_startup_objects() -> None:
    """Leave what start-up made (modules, SQLAlchemy's tables and caches, routes)
    out of garbage collections: a full collection scanned all of it, a pause of
    about 70 ms in the answers under way."""
    gc.collect()
    gc.freeze()


def _reload(node: Any) -> None:
    _log.info("SIGHUP: reloading certificates and CRL")
    defer.Deferred.fromCoroutine(node.reload_now()).addErrback(
        lambda failure: _log.failure("reload failed", failure)
    )
