"""Every govnode hook, each doing one small, real thing.

Copy this file to start a plugin: rename the class, keep the hooks you need,
and delete the rest. One instance (`plugin`) is what the entry point names;
it keeps its settings and state on itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from govnode.hooks import (
    CommandError,
    DirectoryEntry,
    Draft,
    EnrollmentRefused,
    LetterEvent,
    LetterRefused,
    NodeApi,
    PluginRequest,
    PluginSettings,
    Route,
    hookimpl,
)

NAME = "example"


class ExamplePlugin:
    def __init__(self) -> None:
        self.forbidden_words: tuple[str, ...] = ()
        self.never_enroll: tuple[str, ...] = ()
        self.routes: dict[str, str] = {}
        self.heartbeat = 0.0
        self.beats = 0

    # -- configuration, start and stop ---------------------------------------------

    @hookimpl
    def govnode_configure(self, settings: PluginSettings) -> None:
        """`[plugins.example]`: every key read here; any other key is refused as misspelled."""
        self.forbidden_words = settings.strings("forbidden_words", ())
        self.never_enroll = settings.strings("never_enroll", ())
        self.heartbeat = settings.number("heartbeat", 0.0, minimum=0.0, maximum=86400.0)
        routes = settings.table_of("routes")
        self.routes = {node: routes.string(node) for node in routes.keys()}  # noqa: SIM118

    @hookimpl
    def govnode_startup(self, api: NodeApi) -> None:
        api.log(NAME).info("example plugin started on node {node}", node=api.node_id)
        if self.heartbeat and api.primary:
            api.every(self.heartbeat, self._beat, plugin=NAME)

    def _beat(self) -> None:
        self.beats += 1

    @hookimpl
    def govnode_shutdown(self, api: NodeApi) -> None:
        api.log(NAME).info("example plugin stopping after {beats} heartbeats", beats=self.beats)

    # -- the API and the command line -------------------------------------------------

    @hookimpl
    def govnode_api_routes(self, api: NodeApi) -> Sequence[Route]:
        async def hello(request: PluginRequest) -> dict[str, Any]:
            entry = await api.agency(request.caller.agency)
            return {
                "hello": request.caller.address,
                "name": entry.name_fa if entry else None,
                # From the database: events reach the primary process, and this
                # request may be served by another of the node's processes.
                "events_seen": await api.store(NAME).get("events_seen") or {},
            }

        return [Route("GET", "hello", hello)]

    @hookimpl
    def govnode_cli_commands(self, commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        parser = commands.add_parser(NAME, help="the example plugin's command")
        parser.add_argument("--phase", type=int, help="count only this phase's agencies")
        parser.set_defaults(run=self._count)

    async def _count(self, api: NodeApi, args: argparse.Namespace) -> int:
        agencies = await api.agencies()
        if args.phase is not None:
            agencies = [a for a in agencies if a.phase == args.phase]
        if not agencies:
            raise CommandError("no agencies in the directory cache (govnode directory sync)")
        enrolled = sum(1 for a in agencies if a.status == "active")
        print(f"{len(agencies)} agencies at node {api.node_id}, {enrolled} enrolled")
        return 0

    # -- agencies, letters, routes, the directory ---------------------------------------

    @hookimpl
    def govnode_agency_enrollment(self, agency: DirectoryEntry) -> None:
        if agency.code in self.never_enroll:
            raise EnrollmentRefused(f"{agency.code} is in plugins.example.never_enroll")

    @hookimpl
    def govnode_letter_policy(self, letter: Draft) -> Sequence[str] | None:
        for word in self.forbidden_words:
            if word in letter.subject:
                raise LetterRefused(
                    "forbidden_word",
                    f"the subject holds «{word}», which this node does not accept",
                    status=422,
                    field="subject",
                )
        return None

    @hookimpl
    def govnode_route(self, destination: str) -> str | None:
        return self.routes.get(destination)

    @hookimpl
    def govnode_directory_entry(self, agency: DirectoryEntry) -> Mapping[str, object] | None:
        return {"enrolled": agency.status == "active"}

    @hookimpl
    async def govnode_letter_event(self, api: NodeApi, event: LetterEvent) -> None:
        def count(seen: dict[str, int] | None) -> dict[str, int]:
            seen = dict(seen or {})
            seen[event.kind] = seen.get(event.kind, 0) + 1
            return seen

        await api.store(NAME).update("events_seen", count)
        api.counter(NAME, "events", "Letter events the example plugin saw", ["kind"]).labels(
            kind=event.kind
        ).inc()


plugin = ExamplePlugin()
