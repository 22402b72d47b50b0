"""`govnode serve`: the daemon in the foreground, for systemd and supervisord."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

from twisted.internet import defer
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from govnode.config import Config

_log = Logger()


def serve(config: Config) -> int:
    from twisted.internet import reactor as default_reactor

    from govnode.node import Node

    reactor: Any = default_reactor
    # Info and above: per-letter details are debug (the audit log holds every letter).
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.info)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    node = Node(config, reactor=reactor)
    outcome = {"code": 0}

    async def start() -> None:
        node.startService()
        try:
            api_url, admin_url = await node.ready()
        except Exception as exc:  # noqa: BLE001 - any failure to listen ends the daemon
            _log.critical("cannot start: {error}", error=str(exc))
            outcome["code"] = 1
            await node.stopService()
            reactor.stop()
            return
        print(f"govnode ready: {config.node.id} {api_url} admin={admin_url}", flush=True)

    def reload_certificates(_signum: int, _frame: FrameType | None) -> None:
        reactor.callFromThread(_reload, node)

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


def _reload(node: Any) -> None:
    _log.info("SIGHUP: reloading certificates and CRL")
    defer.Deferred.fromCoroutine(node.reload_now()).addErrback(
        lambda failure: _log.failure("reload failed", failure)
    )
