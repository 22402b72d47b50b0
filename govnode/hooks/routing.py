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
    if not plugins.implementers("govnode_route"):
        return None
    warned: set[tuple[str, str]] = set()

    def override(destination: str) -> str | None:
        try:
            hop: str | None = plugins.hook.govnode_route(api=api, destination=destination)
        except Exception:  # noqa: BLE001 - the configured routes answer instead
            _log.failure("govnode_route failed for {node}", node=destination)
            api.count_error("?", "govnode_route")
            return None
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
