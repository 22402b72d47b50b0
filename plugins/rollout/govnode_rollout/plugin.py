"""The rollout plugin's hooks: the phase gate on letters, the directory's opening
dates, `govnode rollout status` and `/api/v1/x/rollout/status`.

The province joins the network in phases. An agency whose phase has not
opened may log in and look agencies up, but sends and receives nothing: a
letter from it, or to it at this node, is refused with `403 phase_not_open`
and the opening day. Recipients at other nodes are their nodes' business.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence

from govnode.hooks import (
    DirectoryEntry,
    Draft,
    LetterQuery,
    LetterRefused,
    NodeApi,
    PluginRequest,
    PluginSettings,
    Refused,
    Route,
    StatusReport,
    hookimpl,
)
from govnode_rollout.schedule import RolloutSettings, read_settings
from govnode_rollout.status import (
    RolloutStatus,
    lag_reason,
    last_letters,
    status_report,
    summarize,
    to_json,
    to_text,
    window_start,
)

NAME = "rollout"

FEW_RECIPIENTS = 8
"""Up to this many local agencies in a letter are looked up one by one; more,
and the whole directory is read once instead."""


class RolloutPlugin:
    """One instance (`plugin`) serves the node; it keeps its checked settings."""

    def __init__(self) -> None:
        self.settings = RolloutSettings()

    @hookimpl
    def govnode_configure(self, settings: PluginSettings) -> None:
        self.settings = read_settings(settings)

    # -- the gate ------------------------------------------------------------------

    @hookimpl
    async def govnode_letter_policy(self, api: NodeApi, letter: Draft) -> None:
        """Refuse a letter from, or to a local agency of, a phase that has not opened."""
        schedule = self.settings.schedule
        now = api.now()
        if schedule.all_open(now):
            return None  # the rollout is over: no lookups at all
        local = f"@{api.node_id}"
        named = [(letter.field_of(i), address) for i, address in enumerate(letter.recipients)]
        codes = [letter.sender.removesuffix(local)]
        codes += [address.removesuffix(local) for _, address in named if address.endswith(local)]
        entries = await _lookup(api, codes)
        sender = entries.get(codes[0])
        if sender is not None and not schedule.is_open(sender.phase, now):
            raise LetterRefused(
                "phase_not_open", schedule.refusal(sender.code, sender.phase, receiving=False)
            )
        mine = [(field, address) for field, address in named if address.endswith(local)]
        if any(address.removesuffix(local) not in entries for _, address in mine):
            return None  # the node refuses the letter: 422 unknown_recipient, naming it
        # Agencies of other nodes are not looked at: their node decides.
        for field, address in mine:
            entry = entries[address.removesuffix(local)]
            if not schedule.is_open(entry.phase, now):
                raise LetterRefused(
                    "phase_not_open",
                    schedule.refusal(entry.code, entry.phase, receiving=True),
                    field=field,
                )
        return None

    # -- the directory -------------------------------------------------------------

    @hookimpl
    def govnode_directory_entry(self, api: NodeApi, agency: DirectoryEntry) -> Mapping[str, object]:
        """`x.rollout` of an entry: its phase's opening day and whether it is open."""
        return self.settings.schedule.entry_facts(agency.phase, api.now())

    # -- the report ----------------------------------------------------------------

    async def status(self, api: NodeApi) -> RolloutStatus:
        """Count the phases now: the directory, and who sent letters in the window."""
        settings = self.settings
        now = api.now()
        since = window_start(now, settings.active_days)
        entries = await api.agencies()
        window = await api.letters_all(LetterQuery(since=since))
        recent = last_letters(window, api.node_id)
        # The laggards' last letter, if any, came before the window: look only at theirs.
        quiet = tuple(
            entry.address
            for entry in entries
            if lag_reason(entry, recent, settings.schedule, now) is not None
        )
        earlier: dict[str, float] = {}
        if quiet:
            before = await api.letters_all(LetterQuery(senders=quiet, until=since))
            earlier = last_letters(before, api.node_id)
        return summarize(
            node=api.node_id,
            entries=entries,
            last_sent={**earlier, **recent},
            schedule=settings.schedule,
            now=now,
            active_days=settings.active_days,
        )

    @hookimpl
    async def govnode_status(self, api: NodeApi) -> StatusReport:
        """The phases' progress on `govnode status` (the same count as `rollout status`)."""
        return status_report(await self.status(api))

    @hookimpl
    def govnode_cli_commands(self, commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        parser = commands.add_parser(NAME, help="the rollout phases: progress and laggards")
        actions = parser.add_subparsers(dest="rollout_command", required=True, metavar="ACTION")
        show = actions.add_parser(
            "status", help="per phase planned, enrolled and active agencies, and who lags"
        )
        show.add_argument("--json", action="store_true", help="JSON (as the API route answers)")
        show.set_defaults(run=self._status_command)

    async def _status_command(self, api: NodeApi, args: argparse.Namespace) -> int:
        status = await self.status(api)
        if args.json:
            print(json.dumps(to_json(status), ensure_ascii=False, indent=2))
        else:
            print(to_text(status))
        return 0

    @hookimpl
    def govnode_api_routes(self, api: NodeApi) -> Sequence[Route]:
        async def status(request: PluginRequest) -> object:
            governorate = self.settings.governorate
            if request.caller.agency != governorate:
                raise Refused(
                    403,
                    "forbidden",
                    f"the rollout status is for the governorate ({governorate}) only",
                )
            return to_json(await self.status(api))

        return [Route("GET", "status", status)]


async def _lookup(api: NodeApi, codes: Sequence[str]) -> dict[str, DirectoryEntry]:
    """The directory entries of `codes` (unknown ones left out)."""
    wanted = set(codes)
    if len(wanted) > FEW_RECIPIENTS:
        return {entry.code: entry for entry in await api.agencies() if entry.code in wanted}
    found = {}
    for code in wanted:
        entry = await api.agency(code)
        if entry is not None:
            found[code] = entry
    return found


plugin = RolloutPlugin()
