"""Which event streams a change concerns (in-process; each stream reads the database)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable


class EventHub:
    """Wakes the streams of the addresses a change concerns."""

    def __init__(self) -> None:
        self._streams: dict[str, set[Callable[[], None]]] = defaultdict(set)

    def subscribe(self, address: str, wake: Callable[[], None]) -> Callable[[], None]:
        self._streams[address].add(wake)

        def unsubscribe() -> None:
            self._streams[address].discard(wake)
            if not self._streams[address]:
                del self._streams[address]

        return unsubscribe

    def notify(self, addresses: Iterable[str]) -> None:
        for address in set(addresses):
            for wake in list(self._streams.get(address, ())):
                wake()

    def notify_all(self) -> None:
        self.notify(list(self._streams))

    @property
    def listeners(self) -> int:
        return sum(len(s) for s in self._streams.values())
