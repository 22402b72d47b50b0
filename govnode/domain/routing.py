"""Where a letter for another node goes next: a routing table with a default route.

Like a mail relay host: explicit routes (destination node → next hop) first,
then the default route (a province's node sends everything else to the
national center), and a node that is its own destination delivers locally.
Loops are stopped by the envelope's hop list (`Envelope.forwarded_by`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


class NoRoute(LookupError):
    """No route leads to the node."""


@dataclass(frozen=True, slots=True)
class RoutingTable:
    local: str
    routes: Mapping[str, str] = field(default_factory=dict)  # destination -> next hop
    default: str | None = None
    # A plugin's say (govnode_route): a next hop, or None to leave it to the table.
    override: Callable[[str], str | None] | None = None

    def next_hop(self, destination: str) -> str | None:
        """The peer to hand a letter for `destination` to; None means deliver here."""
        if destination == self.local:
            return None
        hop = self.override(destination) if self.override is not None else None
        if hop is None:
            hop = self.routes.get(destination, self.default)
        if hop is None or hop == self.local:
            raise NoRoute(f"no route to node {destination!r}")
        return hop

    def routable(self, destination: str) -> bool:
        try:
            self.next_hop(destination)
        except NoRoute:
            return False
        return True
