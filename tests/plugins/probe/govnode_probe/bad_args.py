"""A plugin whose hook asks for an argument the hook does not pass."""

from __future__ import annotations

from govnode.hooks import Draft, NodeApi, hookimpl


class BadArgs:
    @hookimpl
    def govnode_letter_policy(self, api: NodeApi, letter: Draft, urgency: int) -> None:
        """`urgency` is no argument of govnode_letter_policy."""


plugin = BadArgs()
