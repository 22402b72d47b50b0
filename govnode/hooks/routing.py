"""`govnode_route` as the routing table's override: only configured peers are believed."""

from __future__ import annotations

from collections.abc import Callable, Collection

from twisted.logger import Logger

from govnode.hooks.api import NodeApi
from govnode.hooks.manager import Plugins

_log = Logger()


def route_override(
    plugins: Plugins, api: NodeApi, *, peers: Collection[str]
) -> Callable[[str], str | None] | None:
    """The override for `RoutingTable`, or None when no plugin routes."""
    routing = plugins.implementers("govnode_route")
    if not routing:
        return None
    warned: set[tuple[str, str]] = set()

    def ask(destination: str) -> str | None:
        """The first answer (firstresult); a failure leaves it to the configuration."""
        for name in routing:
            try:
                hop: str | None = plugins.call_one(
                    "govnode_route", name, api=api, destination=destination
                )
            except Exception:  # noqa: BLE001 - the configured routes answer instead
                _log.failure(
                    "govnode_route of plugin {plugin} failed for {node}",
                    plugin=name,
                    node=destination,
                )
                api.count_error(name, "govnode_route")
                return None
            if hop is not None:
                return hop
        return None

    def override(destination: str) -> str | None:
        hop = ask(destination)
        if hop is None or hop in peers:
            return hop
        if (destination, str(hop)) not in warned:
            warned.add((destination, str(hop)))
            _log.error(
                "a plugin routes node {node} via {hop}, which is no configured peer; ignored",
                node=destination,
                hop=hop,
            )
        return None

    return override
