"""`govnode_startup` and `govnode_shutdown` as a service of the node."""

from __future__ import annotations

import inspect
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from govnode.hooks.api import NodeApi
from govnode.hooks.errors import PluginError
from govnode.hooks.manager import Plugins


class PluginLifecycle(Service):
    """Starts the plugins with the node (a failure stops start-up) and stops them
    with it (a failure is logged)."""

    name = "plugins"
    _log = Logger()

    def __init__(self, plugins: Plugins, api: NodeApi) -> None:
        self._plugins = plugins
        self._api = api
        self.started: defer.Deferred[None] = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        defer.Deferred.fromCoroutine(self._start()).chainDeferred(self.started)

    async def _start(self) -> None:
        for name in self._plugins.implementers("govnode_startup"):
            try:
                outcome = self._plugins.call_one("govnode_startup", name, api=self._api)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:
                raise PluginError(
                    f"plugin {name!r} failed to start: {type(exc).__name__}: {exc}"
                ) from exc

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._api.stop_work()
        for name in self._plugins.implementers("govnode_shutdown"):
            try:
                outcome = self._plugins.call_one("govnode_shutdown", name, api=self._api)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # noqa: BLE001 - the node stops anyway
                self._log.failure("plugin {plugin} failed to shut down", plugin=name)
                self._api.count_error(name, "govnode_shutdown")
