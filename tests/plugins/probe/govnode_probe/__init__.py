"""The probe: a test-only plugin that implements every hook of govnode.

Each call is written as one JSON line (`hook`, `pid` and the arguments' salient
values) to the file named by `record`, so a test can see what the node called,
when, with what, and in which process. Its settings make it misbehave on
purpose:

    [plugins.probe]
    record = "/tmp/calls.jsonl"   # where the calls go (none: nothing recorded)
    refuse_subject = "REFUSE"     # policy: LetterRefused("probe_says_no", status=403)
    crash_subject = "CRASH"       # policy: RuntimeError
    cc = ["welfare"]              # policy: add these as cc ...
    cc_subject = "COPY"           # ... only to letters whose subject holds this
    garbage_subject = "GARBAGE"   # policy: returns 42, which is no list of addresses
    fail_events = true            # govnode_letter_event raises (after recording)
    refuse_enrollment = "roads"   # govnode_agency_enrollment refuses this agency
    crash_enrollment = "natres"   # ... and raises RuntimeError for this one
    fail_startup = true           # govnode_startup raises
    fail_shutdown = true          # govnode_shutdown raises (after recording)
    fail_routes = true            # govnode_api_routes raises
    route = { fars = "center" }   # govnode_route answers these
    crash_route = "kish"          # govnode_route raises for this destination
    fail_directory = "roads"      # govnode_directory_entry raises for this agency

    [plugins.probe.directory]
    note = "seen by the probe"    # shown under "x": {"probe": {...}} of directory entries
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

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
    Refused,
    Reply,
    Route,
    StatusReport,
    hookimpl,
)

NAME = "probe"


def _optional(settings: PluginSettings, name: str) -> str | None:
    return settings.string(name) if name in settings.table else None


class Probe:
    """The plugin object: settings read by `govnode_configure`, one method per hook."""

    def __init__(self) -> None:
        self.record: Path | None = None
        self.refuse_subject: str | None = None
        self.crash_subject: str | None = None
        self.cc: tuple[str, ...] = ()
        self.cc_subject: str | None = None
        self.garbage_subject: str | None = None
        self.fail_events = False
        self.refuse_enrollment: str | None = None
        self.crash_enrollment: str | None = None
        self.fail_routes = False
        self.crash_route: str | None = None
        self.fail_directory: str | None = None
        self.fail_startup = False
        self.fail_shutdown = False
        self.routes: dict[str, str] = {}
        self.note_text = "seen by the probe"
        self.api: NodeApi | None = None

    def note(self, hook: str, **facts: Any) -> None:
        """Append one call to the record, in one write (several processes append)."""
        if self.record is None:
            return
        line = json.dumps({"hook": hook, "pid": os.getpid(), **facts}, ensure_ascii=False)
        descriptor = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (line + "\n").encode("utf-8"))
        finally:
            os.close(descriptor)

    # -- settings, start, stop -----------------------------------------------------

    @hookimpl
    def govnode_configure(self, settings: PluginSettings) -> None:
        self.record = settings.path_of("record") if "record" in settings.table else None
        self.refuse_subject = _optional(settings, "refuse_subject")
        self.crash_subject = _optional(settings, "crash_subject")
        self.cc = settings.strings("cc", ())
        self.cc_subject = _optional(settings, "cc_subject")
        self.garbage_subject = _optional(settings, "garbage_subject")
        self.fail_events = settings.boolean("fail_events", False)
        self.refuse_enrollment = _optional(settings, "refuse_enrollment")
        self.crash_enrollment = _optional(settings, "crash_enrollment")
        self.fail_routes = settings.boolean("fail_routes", False)
        self.crash_route = _optional(settings, "crash_route")
        self.fail_directory = _optional(settings, "fail_directory")
        self.fail_startup = settings.boolean("fail_startup", False)
        self.fail_shutdown = settings.boolean("fail_shutdown", False)
        route = settings.table_of("route")
        destinations = route.keys()  # a table whose keys are data: all of them are read
        self.routes = {destination: route.string(destination) for destination in destinations}
        self.note_text = settings.table_of("directory").string("note", "seen by the probe")
        self.note("govnode_configure", section=settings.prefix, keys=sorted(settings.table))

    @hookimpl
    async def govnode_startup(self, api: NodeApi) -> None:
        self.api = api
        agencies = await api.agencies()
        self.note("govnode_startup", node=api.node_id, primary=api.primary, agencies=len(agencies))
        if self.fail_startup:
            raise RuntimeError("the probe was told to fail at start-up")

    @hookimpl
    async def govnode_shutdown(self, api: NodeApi) -> None:
        # The database must still answer while the plugins stop.
        agencies = await api.agencies()
        self.note("govnode_shutdown", node=api.node_id, agencies=len(agencies))
        if self.fail_shutdown:
            raise RuntimeError("the probe was told to fail at shutdown")

    # -- the API ---------------------------------------------------------------------

    @hookimpl
    def govnode_api_routes(self, api: NodeApi) -> Sequence[Route]:
        self.note("govnode_api_routes", node=api.node_id)
        if self.fail_routes:
            raise RuntimeError("the probe was told to fail offering its routes")

        async def hello(request: PluginRequest) -> Any:
            self.note("route", path=request.path, agency=request.caller.agency)
            return {
                "hello": request.caller.address,
                "agency": request.caller.agency,
                "user": request.caller.user,
                "node": api.node_id,
                "name": request.arg("name"),
            }

        async def boom(request: PluginRequest) -> Any:
            self.note("route", path=request.path, agency=request.caller.agency)
            raise RuntimeError("probe route blew up: PROBE-SECRET-DETAIL")

        async def echo(request: PluginRequest) -> Reply:
            self.note("route", path=request.path, agency=request.caller.agency)
            return Reply({"echo": request.body, "from": request.caller.address}, status=201)

        async def refuse(request: PluginRequest) -> Any:
            self.note("route", path=request.path, agency=request.caller.agency)
            raise Refused(409, "probe_conflict", "the probe refuses", field="why")

        async def letter(request: PluginRequest) -> Any:
            self.note("route", path=request.path, agency=request.caller.agency)
            found = await api.letter(request.params["letter_id"])
            if found is None:
                raise Refused(404, "not_found", "the probe knows no such letter")
            return {"id": found.id, "number": found.number, "sender": found.sender}

        async def text(request: PluginRequest) -> Reply:
            return Reply(b"code,count\nprobe,1\n", content_type="text/csv")

        return [
            Route("GET", "hello", hello),
            Route("GET", "boom", boom),
            Route("POST", "echo", echo),
            Route("GET", "refuse", refuse),
            Route("GET", "letters/{letter_id}", letter),
            Route("GET", "report.csv", text),
        ]

    # -- the command line ------------------------------------------------------------

    @hookimpl
    def govnode_cli_commands(self, commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        self.note("govnode_cli_commands")
        probe = commands.add_parser(NAME, help="the probe's own commands (tests only)")
        actions = probe.add_subparsers(dest="probe_command", required=True, metavar="ACTION")
        actions.add_parser("hello", help="say hello from the node's home").set_defaults(
            run=self.hello
        )
        enroll = actions.add_parser("enroll", help="enroll an agency through the plugin API")
        enroll.add_argument("code")
        enroll.set_defaults(run=self.enroll)
        send = actions.add_parser("send", help="send a letter through the plugin API")
        send.add_argument("sender")
        send.add_argument("to")
        send.add_argument("subject")
        send.set_defaults(run=self.send)
        actions.add_parser("fail", help="fail with exit code 2").set_defaults(run=self.fail)

    async def hello(self, api: NodeApi, args: argparse.Namespace) -> int:
        agencies = await api.agencies()
        pending = sum(1 for agency in agencies if agency.status == "pending")
        self.note("cli", command="hello", agencies=len(agencies), primary=api.primary)
        print(f"probe hello from {api.node_id}: {len(agencies)} agencies, {pending} pending")
        return 0

    async def enroll(self, api: NodeApi, args: argparse.Namespace) -> int:
        issued = await api.enroll(args.code, by=f"plugin:{NAME}")
        self.note("cli", command="enroll", code=issued.code)
        print(f"probe enrolled {issued.code}: {issued.fingerprint_sha256}")
        return 0

    async def send(self, api: NodeApi, args: argparse.Namespace) -> int:
        try:
            sent = await api.send_letter(
                plugin=NAME, sender=args.sender, to=[args.to], subject=args.subject, body="متن"
            )
        except LetterRefused as exc:
            raise CommandError(f"refused: {exc.code}: {exc.message}") from None
        except ValueError as exc:
            raise CommandError(f"not a letter: {exc}") from None
        self.note("cli", command="send", id=sent.id, number=sent.number)
        print(f"probe sent {sent.number} ({sent.id})")
        return 0

    def fail(self, api: NodeApi, args: argparse.Namespace) -> int:
        self.note("cli", command="fail")
        raise CommandError("the probe command failed as asked", exit_code=2)

    # -- agencies and letters --------------------------------------------------------

    @hookimpl
    async def govnode_agency_enrollment(self, api: NodeApi, agency: DirectoryEntry) -> None:
        self.note(
            "govnode_agency_enrollment",
            code=agency.code,
            address=agency.address,
            status=agency.status,
        )
        if agency.code == self.refuse_enrollment:
            raise EnrollmentRefused(f"the probe does not let {agency.code} in")
        if agency.code == self.crash_enrollment:
            raise RuntimeError("the probe's enrollment check crashed")

    @hookimpl
    async def govnode_letter_policy(self, api: NodeApi, letter: Draft) -> Sequence[str] | None:
        self.note(
            "govnode_letter_policy",
            sender=letter.sender,
            user=letter.user,
            to=list(letter.to),
            cc=list(letter.cc),
            subject=letter.subject,
            priority=letter.priority,
            attachments=[a.filename for a in letter.attachments],
        )
        if self.refuse_subject and self.refuse_subject in letter.subject:
            raise LetterRefused("probe_says_no", "the probe does not let this letter through")
        if self.crash_subject and self.crash_subject in letter.subject:
            raise RuntimeError("the probe's policy crashed")
        if self.garbage_subject and self.garbage_subject in letter.subject:
            return cast("Sequence[str]", 42)  # a typed plugin could not; others can
        if self.cc and (self.cc_subject is None or self.cc_subject in letter.subject):
            return list(self.cc)
        return None

    @hookimpl
    def govnode_route(self, api: NodeApi, destination: str) -> str | None:
        hop = self.routes.get(destination)
        self.note("govnode_route", destination=destination, hop=hop)
        if destination == self.crash_route:
            raise RuntimeError("the probe's routing crashed")
        return hop

    @hookimpl
    def govnode_directory_entry(
        self, api: NodeApi, agency: DirectoryEntry
    ) -> Mapping[str, object] | None:
        self.note("govnode_directory_entry", code=agency.code)
        if agency.code == self.fail_directory:
            raise RuntimeError("the probe's directory addition crashed")
        return {"code": agency.code, "status": agency.status, "note": self.note_text}

    @hookimpl
    async def govnode_letter_event(self, api: NodeApi, event: LetterEvent) -> None:
        found = await api.letter(event.letter_id)
        self.note(
            "govnode_letter_event",
            id=event.id,
            kind=event.kind,
            letter_id=event.letter_id,
            number=event.number,
            sender=event.sender,
            address=event.address,
            node=event.node,
            subject=found.subject if found else None,
        )
        if self.fail_events:
            raise RuntimeError(f"the probe was told to fail on event {event.id}")

    @hookimpl
    async def govnode_status(self, api: NodeApi) -> StatusReport:
        agencies = await api.agencies()
        self.note("govnode_status", pid=os.getpid())
        return StatusReport(
            lines=[f"{len(agencies)} agencies seen by the probe"], facts={"agencies": len(agencies)}
        )


plugin = Probe()
