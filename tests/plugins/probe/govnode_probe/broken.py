"""A plugin that implements a hook govnode does not have (a misspelling)."""

from __future__ import annotations

from govnode.hooks import hookimpl


class Broken:
    @hookimpl
    def govnode_not_a_hook(self) -> None:
        """Meant to be `govnode_startup`, say: start-up must refuse the plugin, by name."""


plugin = Broken()
