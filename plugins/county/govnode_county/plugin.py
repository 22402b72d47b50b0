"""The county plugin's hooks: settings, the parent's API, the operator's commands,
the parent's copy of letters leaving the province, and the directory's note of
who receives for an office that is not enrolled."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from govnode.hooks import DirectoryEntry, Draft, NodeApi, PluginSettings, Route, hookimpl
from govnode_county.commands import add_commands
from govnode_county.routes import CountyRoutes


class CountyPlugin:
    """One instance per process; the only state on it is its settings."""

    def __init__(self) -> None:
        self.copy_parent = False

    @hookimpl
    def govnode_configure(self, settings: PluginSettings) -> None:
        """`[plugins.county]`: `copy_parent` (default false)."""
        self.copy_parent = settings.boolean("copy_parent", False)

    @hookimpl
    def govnode_api_routes(self, api: NodeApi) -> Sequence[Route]:
        return CountyRoutes(api).routes()

    @hookimpl
    def govnode_cli_commands(self, commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        add_commands(commands)

    @hookimpl
    async def govnode_letter_policy(self, api: NodeApi, letter: Draft) -> Sequence[str] | None:
        """With `copy_parent`, a county office's letter to another node is copied (cc)
        to its parent agency, which answers for what leaves the province in its name."""
        if not self.copy_parent:
            return None
        if all(address.partition("@")[2] == api.node_id for address in letter.recipients):
            return None
        code, _, node = letter.sender.partition("@")
        if node != api.node_id:
            return None
        office = await api.agency(code)
        if office is None or office.parent is None:
            return None
        parent = await api.agency(office.parent)
        # A directory that lost the parent must not stop the office's letter: no copy then.
        return None if parent is None else [parent.address]

    @hookimpl
    def govnode_directory_entry(self, agency: DirectoryEntry) -> Mapping[str, object] | None:
        """For a county office: its parent, and whether the parent receives its letters
        (it does until the office is enrolled)."""
        if agency.parent is None:
            return None
        node = agency.address.rpartition("@")[2]  # a parent is at its office's node
        return {
            "parent": f"{agency.parent}@{node}",
            "parent_receives": agency.status != "active",
        }


plugin = CountyPlugin()
