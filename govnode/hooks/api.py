"""`NodeApi`: the one object plugins get, and all they may touch of the node.

Everything that reads or writes runs on the node's thread pools and is
awaited; nothing here blocks the reactor. Letters a plugin sends go the
way of every letter (checks, policy hooks, registration number, audit,
delivery); certificates it issues go through the enrollment hooks. Plugins
name themselves (`plugin=`) where their work is kept apart: their records,
metrics, log namespace and audit entries.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from govnode.config import Config
from govnode.domain.agency import is_agency_code
from govnode.domain.ids import new_ulid
from govnode.domain.letters import LetterInvalid, Submission, parse_submission
from govnode.domain.plugins import (
    DirectoryEntry,
    Draft,
    DraftAttachment,
    Enrollment,
    LetterPage,
    LetterQuery,
    LetterRecord,
    Registered,
)
from govnode.hooks.errors import EnrollmentRefused
from govnode.hooks.manager import Plugins
from govnode.pki.authority import NodeAuthority
from govnode.pki.errors import PkiError
from govnode.store import audit, directory, mailbox, plugin_data, plugin_views
from govnode.store.database import Database
from govnode.store.delivery import Delivered
from govnode.store.letters import NewLetter, NotAReply, Registrar, UnknownRecipient
from govnode.store.records import AgencyRecord

T = TypeVar("T")
MAX_PAGE = 1000


def entry_of(record: AgencyRecord, node_id: str) -> DirectoryEntry:
    agency = record.agency
    return DirectoryEntry(
        code=agency.code,
        address=f"{agency.code}@{node_id}",
        name_fa=agency.name_fa,
        name_en=agency.name_en,
        kind=agency.kind,
        phase=agency.phase,
        parent=agency.parent,
        county=agency.county,
        status=str(record.status),
    )


def draft_of(sender: str, user: str, submission: Submission) -> Draft:
    return Draft(
        sender=sender,
        user=user,
        to=tuple(str(r.address) for r in submission.recipients if r.kind == "to"),
        cc=tuple(str(r.address) for r in submission.recipients if r.kind == "cc"),
        subject=submission.subject,
        body=submission.body,
        priority=str(submission.priority),
        classification=str(submission.classification),
        in_reply_to=submission.in_reply_to,
        reply_by=submission.reply_by,
        attachments=tuple(
            DraftAttachment(a.filename, a.content_type, a.size) for a in submission.attachments
        ),
        fields=tuple(r.field for r in submission.recipients if r.kind == "to")
        + tuple(r.field for r in submission.recipients if r.kind == "cc"),
    )


class PluginStore:
    """One plugin's records: JSON values under keys of its choosing, in the node's database."""

    def __init__(self, db: Database, plugin: str, clock: IReactorTime) -> None:
        self._db = db
        self._plugin = plugin
        self._clock = clock

    async def get(self, key: str) -> Any:
        return await self._db.read(plugin_data.thd_get, self._plugin, key)

    async def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        return await self._db.read(plugin_data.thd_items, self._plugin, prefix)

    async def put(self, key: str, value: Any) -> None:
        await self._db.run(plugin_data.thd_put, self._plugin, key, value, now=self._clock.seconds())

    async def delete(self, key: str) -> bool:
        return await self._db.run(plugin_data.thd_delete, self._plugin, key)

    async def update(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Change one value atomically: `change(old or None)` runs in the write
        transaction (keep it quick, no I/O); returning None deletes the value."""
        return await self._db.run(
            plugin_data.thd_update, self._plugin, key, change, now=self._clock.seconds()
        )


class NodeApi:
    """The facade of one node (or, in a plugin's CLI command, of its home)."""

    def __init__(
        self,
        *,
        config: Config,
        db: Database,
        plugins: Plugins,
        reactor: Any,
        clock: IReactorTime | None = None,
        registry: Any = None,
        primary: bool = True,
        routable: Callable[[str], bool] = lambda _node: False,
        on_registered: Callable[[Submission, str], None] = lambda _s, _sender: None,
        on_delivered: Callable[[list[Delivered]], None] = lambda _done: None,
        wake: Callable[[], None] = lambda: None,
        on_read: Callable[[str], None] = lambda _sender: None,
        count_error: Callable[[str, str], None] = lambda _plugin, _hook: None,
    ) -> None:
        self._config = config
        self._db = db
        self._plugins = plugins
        self._reactor = reactor
        self._clock: IReactorTime = clock or reactor
        self._registry = registry
        self.primary = primary
        self._on_registered = on_registered
        self._on_read = on_read
        self.count_error = count_error
        self._registrar = Registrar(
            db,
            node_id=config.node.id,
            clock=self._clock,
            routable=routable,
            on_delivered=on_delivered,
            wake=wake,
        )
        self._authority = NodeAuthority(config.tls, config.node.id, db)
        self._loops: list[task.LoopingCall] = []
        self._metrics: dict[str, Any] = {}

    # -- the node ----------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self._config.node.id

    @property
    def node_name(self) -> str:
        return self._config.node.name

    def now(self) -> float:
        """The node's clock (a test's clock in tests)."""
        return self._clock.seconds()

    def log(self, plugin: str) -> Logger:
        """A logger in the node's log, namespace `govnode.plugins.<plugin>`."""
        return Logger(namespace=f"govnode.plugins.{plugin}")

    # -- metrics -------------------------------------------------------------------

    def _metric(self, kind: type[T], plugin: str, name: str, doc: str, **options: Any) -> T:
        full = f"govnode_plugin_{plugin}_{name}".replace("-", "_")
        known = self._metrics.get(full)
        if known is None:
            # Without a registry (a CLI command) the metric is counted nowhere.
            made: Any = kind
            known = self._metrics[full] = made(full, doc, registry=self._registry, **options)
        assert isinstance(known, kind)
        return known

    def counter(self, plugin: str, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        """A counter on /metrics named `govnode_plugin_<plugin>_<name>`."""
        return self._metric(Counter, plugin, name, doc, labelnames=list(labels))

    def gauge(self, plugin: str, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return self._metric(
            Gauge, plugin, name, doc, labelnames=list(labels), multiprocess_mode="mostrecent"
        )

    def histogram(self, plugin: str, name: str, doc: str, labels: Sequence[str] = ()) -> Histogram:
        return self._metric(Histogram, plugin, name, doc, labelnames=list(labels))

    # -- work --------------------------------------------------------------------

    async def in_thread(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work (files, other services) off the reactor."""
        result: T = await deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), lambda: work(*args, **kwargs)
        )
        return result

    def every(self, seconds: float, work: Callable[[], Any], *, plugin: str) -> task.LoopingCall:
        """Run `work` (may be async) every `seconds`, first after one interval, until
        the node stops. A failure is logged and counted, and the next run comes."""

        async def once() -> None:
            try:
                outcome = work()
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # noqa: BLE001 - a plugin's failure, reported and survived
                self.log(plugin).failure("scheduled work of plugin {plugin} failed", plugin=plugin)
                self.count_error(plugin, "every")

        loop = task.LoopingCall(lambda: defer.Deferred.fromCoroutine(once()))
        loop.clock = self._clock
        loop.start(seconds, now=False)
        self._loops.append(loop)
        return loop

    def stop_work(self) -> None:
        """Stop what `every` scheduled (the node is stopping)."""
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()

    # -- the directory -------------------------------------------------------------

    async def agency(self, code: str) -> DirectoryEntry | None:
        """An agency of this node, with its enrollment status; None when unknown."""
        if not is_agency_code(code):
            return None
        record = await self._db.read(directory.thd_get, code, now=self.now())
        return None if record is None else entry_of(record, self.node_id)

    async def agencies(self) -> list[DirectoryEntry]:
        """Every agency of this node, ordered by code."""
        records = await self._db.read(directory.thd_all, now=self.now())
        return [entry_of(record, self.node_id) for record in records]

    # -- letters -----------------------------------------------------------------

    async def letter(self, letter_id: str) -> LetterRecord | None:
        return await self._db.read(plugin_views.thd_letter, letter_id)

    async def letters(
        self, query: LetterQuery, *, after: str | None = None, limit: int = 500
    ) -> LetterPage:
        """Letters matching `query`, oldest first, a page at a time."""
        position = int(after) if after and after.isdigit() else 0
        found, more = await self._db.read(
            plugin_views.thd_letters,
            query,
            node_id=self.node_id,
            after=position,
            limit=max(1, min(limit, MAX_PAGE)),
        )
        return LetterPage(tuple(found), None if more is None else str(more))

    async def letters_all(self, query: LetterQuery) -> list[LetterRecord]:
        """Every letter matching `query` (page by page; for reports over a period)."""
        found: list[LetterRecord] = []
        after: str | None = None
        while True:
            page = await self.letters(query, after=after, limit=MAX_PAGE)
            found.extend(page.letters)
            if page.next is None:
                return found
            after = page.next

    async def inbox(
        self, agency: str, *, before: int | None = None, limit: int = 50, unread: bool = False
    ) -> tuple[list[mailbox.Summary], bool]:
        """An agency's inbox, newest first, as its own `GET /inbox` pages it."""
        return await self._db.read(
            mailbox.thd_inbox,
            f"{agency}@{self.node_id}",
            before=before,
            limit=limit,
            unread=unread,
        )

    async def letter_for(self, agency: str, letter_id: str) -> mailbox.LetterView | None:
        """A letter as `agency` may see it (sent or received), body included; None otherwise."""
        return await self._db.read(mailbox.thd_letter, letter_id, f"{agency}@{self.node_id}")

    async def mark_read(
        self, agency: str, letter_id: str, *, on_behalf_by: str
    ) -> mailbox.RecipientView | None:
        """Mark a letter read for `agency`, by `on_behalf_by` (audited as such)."""
        marked = await self._db.run(
            mailbox.thd_mark_read,
            letter_id,
            f"{agency}@{self.node_id}",
            now=self.now(),
            node_id=self.node_id,
            on_behalf_by=on_behalf_by,
        )
        if marked is None:
            return None
        entry, sender = marked
        self._on_read(sender)
        return entry

    async def send_letter(
        self,
        *,
        plugin: str,
        sender: str,
        to: Sequence[str],
        subject: str,
        body: str = "",
        cc: Sequence[str] = (),
        reply_by: str | None = None,
        in_reply_to: str | None = None,
    ) -> Registered:
        """Register a letter from agency `sender` of this node, by the plugin: checked,
        numbered and delivered like any other (`LetterRefused` when a policy says no,
        `ValueError` naming the field when it is not a valid letter)."""
        document: dict[str, Any] = {"to": list(to), "cc": list(cc), "subject": subject}
        document["body"] = body
        if reply_by is not None:
            document["reply_by"] = reply_by
        if in_reply_to is not None:
            document["in_reply_to"] = in_reply_to
        try:
            submission = parse_submission(
                document,
                local_node=self.node_id,
                max_attachment_bytes=self._config.limits.max_attachment_bytes,
                with_hash=False,
            )
        except LetterInvalid as exc:
            raise ValueError(f"{exc.field}: {exc.message}") from None
        address = f"{sender}@{self.node_id}"
        user = f"plugin:{plugin}"
        submission = await self.apply_policy(draft_of(address, user, submission), submission)
        now = self.now()
        new = NewLetter(
            id=new_ulid(int(now * 1000)),
            sender=address,
            user=user,
            submission=submission,
            attachments=(),
            created_at=now,
            idempotency_key=None,
        )
        try:
            registered = await self._registrar.register(new)
        except UnknownRecipient as exc:
            raise ValueError(f"{exc.field}: {exc}") from None
        except NotAReply:
            raise ValueError(
                f"in_reply_to: {in_reply_to} is no letter {address} received"
            ) from None
        self._on_registered(submission, address)
        return Registered(registered.id, registered.number)

    async def apply_policy(self, draft: Draft, submission: Submission) -> Submission:
        """Run every `govnode_letter_policy`: the submission with the copies they add;
        `LetterRefused` as a plugin said, `PolicyUnavailable` when one failed."""
        from govnode.hooks.policy import letter_policy

        return await letter_policy(self, self._plugins, draft, submission)

    # -- enrollment --------------------------------------------------------------

    async def check_enrollment(self, entry: DirectoryEntry) -> None:
        """Ask every `govnode_agency_enrollment` (EnrollmentRefused, fail-closed)."""
        for name in self._plugins.implementers("govnode_agency_enrollment"):
            try:
                outcome = self._plugins.call_one(
                    "govnode_agency_enrollment", name, api=self, agency=entry
                )
                if inspect.isawaitable(outcome):
                    await outcome
            except EnrollmentRefused:
                raise
            except Exception as exc:
                self.log(name).failure("enrollment hook of {plugin} failed", plugin=name)
                self.count_error(name, "govnode_agency_enrollment")
                raise EnrollmentRefused(
                    f"plugin {name} could not check the enrollment ({type(exc).__name__}); "
                    "nothing was issued"
                ) from exc

    async def enroll(self, code: str, *, by: str, csr_pem: bytes | None = None) -> Enrollment:
        """Issue agency `code`'s client certificate (for the key of `csr_pem` when
        given), after the enrollment hooks agree; audited with `by` as the actor.
        `EnrollmentRefused` when a hook or the directory says no."""
        entry = await self.agency(code)
        if entry is None:
            raise EnrollmentRefused(f"{code} is not in the directory of node {self.node_id}")
        if entry.status == "active":
            raise EnrollmentRefused(f"{code} is already enrolled")
        await self.check_enrollment(entry)
        moment = datetime.fromtimestamp(self.now(), UTC)
        try:
            issued = await self.in_thread(self._authority.enroll, code, now=moment, csr_pem=csr_pem)
            ca_pem = await self.in_thread(self._config.tls.ca_cert.read_bytes)
        except (PkiError, OSError) as exc:
            raise EnrollmentRefused(str(exc)) from exc
        await self.audit(
            "agency.enrollment_by",
            actor=by,
            subject=code,
            detail={"serial": f"{issued.serial:x}", "csr": csr_pem is not None},
        )
        return Enrollment(
            code=code,
            cert_pem=issued.cert_pem,
            key_pem=issued.key_pem or None,
            ca_pem=ca_pem,
            fingerprint_sha256=issued.fingerprint_sha256,
            not_after=issued.not_after.timestamp(),
        )

    # -- records -----------------------------------------------------------------

    async def audit(
        self, kind: str, *, actor: str, subject: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append to the node's hash-chained audit log."""
        await self._db.run(
            audit.thd_append, kind, actor=actor, subject=subject, at=self.now(), detail=detail
        )

    def store(self, plugin: str) -> PluginStore:
        """The plugin's own records in the node's database."""
        return PluginStore(self._db, plugin, self._clock)
