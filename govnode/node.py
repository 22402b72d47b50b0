"""Builds a node's service tree from its Config: the one place that knows every part."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import text
from twisted.application.service import MultiService, Service
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger, LogLevel
from twisted.web import server
from twisted.web.server import Site

from govnode.api.admin import AdminApi
from govnode.api.agency import AgencyApi
from govnode.api.auth import Authenticator
from govnode.api.federation import FederationApi
from govnode.api.guard import Guard, agency_of
from govnode.api.hub import EventHub
from govnode.api.letter_metrics import QueueGauges, observe_deliveries
from govnode.api.limits import limited_request
from govnode.api.metrics import Metrics
from govnode.api.plugin_routes import PluginSupport
from govnode.api.resource import AcyclicKleinResource
from govnode.config.model import Config, Endpoint
from govnode.directory.errors import DirectoryUnavailable
from govnode.directory.ldap import LdapDirectory
from govnode.domain.letters import Submission
from govnode.domain.routing import RoutingTable
from govnode.hooks.api import NodeApi
from govnode.hooks.events import EventDispatcher
from govnode.hooks.lifecycle import PluginLifecycle
from govnode.hooks.manager import Plugins, load_plugins
from govnode.hooks.routing import route_override
from govnode.pki import signing
from govnode.pki.authority import NodeAuthority
from govnode.pki.crl_sync import crl_behind
from govnode.pki.errors import PkiError
from govnode.pki.expiry import (
    EXPIRY_WARNING,
    ExpiryWarnings,
    Held,
    Standing,
    agencies_entry,
    held_certificates,
    log_entries,
)
from govnode.pki.peers import Peers
from govnode.pki.tls import ServerTLS
from govnode.processes import SharedSocketEndpoint
from govnode.relay.directories import PeerDirectories
from govnode.relay.notice_sender import NoticeSender
from govnode.relay.peer_check import check_peer
from govnode.relay.sender import FederationSender
from govnode.relay.worker import DeliveryWorker
from govnode.store import audit, certificates, letters, mailbox, tokens
from govnode.store import directory as directory_store
from govnode.store.blobs import BlobStore
from govnode.store.database import Database, DatabaseUnavailable, is_sqlite
from govnode.store.delivery import Delivered
from govnode.store.leadership import Leadership

T = TypeVar("T")
SITE_TIMEOUT = 60  # seconds a connection may sit idle
CHECKPOINT_INTERVAL = 60  # seconds between signed audit checkpoints
EVENT_POLL_INTERVAL = 0.1  # seconds between looks for other processes' events
PEER_CHECK_INTERVAL = 60  # seconds between hellos to each peer
PEER_DIRECTORY_INTERVAL = 300  # seconds between fetches of each peer's directory
PURGE_INTERVAL = 3600  # seconds between removals of expired tokens and old login failures
EXPIRY_CHECK_INTERVAL = 3600  # seconds between looks at certificate expiry (logged once a day)


class _Started(Service):
    """A child service made of two callables (start pools, stop pools)."""

    def __init__(self, name: str, start: Callable[[], None], stop: Callable[[], None]) -> None:
        self.setName(name)
        self._start, self._stop = start, stop

    def startService(self) -> None:
        super().startService()
        self._start()

    def stopService(self) -> None:
        super().stopService()
        self._stop()


class _Periodic(Service):
    """Runs `work` now and every `interval` seconds; a failure is logged, never fatal."""

    _log = Logger()

    def __init__(
        self, name: str, interval: float, work: Callable[[], Any], clock: IReactorTime
    ) -> None:
        self.setName(name)
        self._loop = task.LoopingCall(self._run, work)
        self._loop.clock = clock
        self._interval = interval
        self._done: defer.Deferred[Any] | None = None

    async def _run_async(self, work: Callable[[], Any]) -> None:
        try:
            await work()
        except (DirectoryUnavailable, DatabaseUnavailable) as exc:
            # Expected outages: one line, and the job runs again next time.
            self._log.error("{name} failed: {error}", name=self.name, error=str(exc))
        except Exception:  # noqa: BLE001 - a periodic job must survive its failures
            self._log.failure("{name} failed", name=self.name)

    def _run(self, work: Callable[[], Any]) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(self._run_async(work))

    def startService(self) -> None:
        super().startService()
        self._done = self._loop.start(self._interval, now=True)

    def stopService(self) -> defer.Deferred[Any] | None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        return self._done


class _QuietSite(Site):
    """No access-log line per request: at thousands of letters a second it costs
    more than it tells; the audit log and metrics record what matters."""

    def log(self, request: Any) -> None:
        pass


class _Listener(Service):
    """Listens on an endpoint while running; `port` is known once started."""

    def __init__(self, name: str, endpoint: Any, factory: Any) -> None:
        self.setName(name)
        self._endpoint = endpoint
        self._factory = factory
        self.listening: defer.Deferred[IListeningPort] = defer.Deferred()
        self._port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        listen = self._endpoint.listen(self._factory)
        listen.addCallback(self._up)
        listen.addErrback(self.listening.errback)

    def _up(self, port: IListeningPort) -> None:
        self._port = port
        self.listening.callback(port)

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        if self._port is None:
            return None
        return self._port.stopListening()


def _endpoint(reactor: Any, where: Endpoint) -> Any:
    if ":" in where.host:
        return TCP6ServerEndpoint(reactor, where.port, interface=where.host)
    return TCP4ServerEndpoint(reactor, where.port, interface=where.host)


def _url(scheme: str, where: Endpoint, port: IListeningPort) -> str:
    host = f"[{where.host}]" if ":" in where.host else where.host
    address: Any = port.getHost()
    return f"{scheme}://{host}:{address.port}"


class Node(MultiService):
    """A running govnode: pools, directory sync, certificate reload, two listeners."""

    _log = Logger()

    def __init__(
        self,
        config: Config,
        *,
        reactor: Any,
        clock: IReactorTime | None = None,
        secondary: bool = False,
        plugins: Plugins | None = None,
    ) -> None:
        """`secondary`: run as a secondary process on the primary's API socket;
        `plugins`: the loaded plugins (loaded here from the config when not given;
        PluginError or ConfigError when one cannot be used)."""
        super().__init__()
        self.config = config
        self.primary = not secondary
        self._reactor: Any = reactor
        self.clock: IReactorTime = clock or reactor
        self.metrics = Metrics()
        if self.primary:  # `govnode status` shows the uptime
            self.metrics.start_time.labels(node=config.node.id).set(self.clock.seconds())
        self.db = Database(
            config.database.url, reactor=reactor, pool_size=config.database.pool_size
        )
        self.directory = LdapDirectory(
            config.ldap,
            reactor=reactor,
            observe_latency=self.metrics.observe_ldap,
            count_error=self.metrics.count_ldap_error,
        )
        self.authority = NodeAuthority(config.tls, config.node.id, self.db)
        self.tls = ServerTLS(
            cert_path=config.tls.server_cert,
            key_path=config.tls.server_key,
            ca_path=config.tls.ca_cert,
            crl_path=config.tls.crl,
            require_client_cert=config.tls.require_client_cert,
        )
        self.authenticator = Authenticator(
            db=self.db,
            directory=self.directory,
            clock=self.clock,
            limits=config.limits,
            metrics=self.metrics,
            session_ttl=config.tls.reload_interval,
        )
        # The node's signature: audit checkpoints, envelopes and receipts (read once).
        self._sign = signing.signer(self.authority.signing_key())
        self.blobs = BlobStore(config.node.attachments)
        self.hub = EventHub()
        self.plugins = plugins if plugins is not None else load_plugins(config)
        self.plugin_api = NodeApi(
            config=config,
            db=self.db,
            plugins=self.plugins,
            reactor=reactor,
            clock=self.clock,
            registry=self.metrics.registry,
            primary=self.primary,
            routable=lambda node: self.routing.routable(node),
            on_registered=self._plugin_letter_registered,
            on_delivered=lambda done: self._delivered(done),
            wake=lambda: self.worker.wake(),
            on_read=lambda sender: self.hub.notify([sender]),
            count_error=self.metrics.count_plugin_error,
        )
        self.routing = RoutingTable(
            local=config.node.id,
            routes=config.federation.routes,
            default=config.federation.default_route,
            override=route_override(
                self.plugins, self.plugin_api, peers=[peer.id for peer in config.peers]
            ),
        )
        plugin_support = PluginSupport(self.plugins, self.plugin_api)
        plugin_support.collect_routes()
        self.worker = DeliveryWorker(
            self.db,
            node_id=config.node.id,
            clock=self.clock,
            on_delivered=self._delivered,
            # The primary starts before any other process of this node: no
            # transfer leased before it started is still under way. (Another
            # server's may be, on PostgreSQL: sent twice, the peer stores it once.)
            recover_leases=self.primary,
        )
        agency_api = AgencyApi(
            node_id=config.node.id,
            db=self.db,
            authenticator=self.authenticator,
            clock=self.clock,
            metrics=self.metrics,
            limits=config.limits,
            blobs=self.blobs,
            reactor=reactor,
            on_change=self.worker.wake,
            on_delivered=self._delivered,
            hub=self.hub,
            routable=self.routing.routable,
            plugins=plugin_support,
        )
        admin_api = AdminApi(
            checks={"database": self._check_database, "ldap": self.directory.ping},
            metrics=self.metrics,
            refresh=QueueGauges(
                db=self.db, metrics=self.metrics, node_id=config.node.id, clock=self.clock
            ).refresh,
        )
        _Started("database", self.db.start, self.db.stop).setServiceParent(self)
        _Started("ldap", self.directory.start, self.directory.stop).setServiceParent(self)
        _Periodic(
            "certificate reload", config.tls.reload_interval, self._reload_certificates, self.clock
        ).setServiceParent(self)
        self._expiry_warnings = ExpiryWarnings()
        self.federation_tls: ServerTLS | None = None
        # Several servers on one PostgreSQL: one leads the upkeep (see leadership.py).
        self.leadership = Leadership(config.database.url, reactor=reactor)
        if self.primary:  # the upkeep of the node, done once
            self.leadership.setServiceParent(self)
            _Periodic(
                "certificate expiry", EXPIRY_CHECK_INTERVAL, self._check_expiry, self.clock
            ).setServiceParent(self)
            sync = _Periodic(
                "directory sync",
                config.ldap.sync_interval,
                self._leading(self.sync_directory),
                self.clock,
            )
            sync.setServiceParent(self)
            _Periodic("purge", PURGE_INTERVAL, self._purge, self.clock).setServiceParent(self)
            checkpoint = _Periodic(
                "audit checkpoint", CHECKPOINT_INTERVAL, self._leading(self._checkpoint), self.clock
            )
            checkpoint.setServiceParent(self)
            # Taking the lead: the upkeep a follower skipped runs now (logged as the jobs log).
            self.leadership.on_lead.extend(
                [
                    partial(sync._run_async, self.sync_directory),
                    partial(checkpoint._run_async, self._checkpoint),
                ]
            )
        if config.listen.processes > 1 or not is_sqlite(self.db.engine):
            # Letters registered by the other processes (or, on PostgreSQL, the
            # other servers) wake this one's event streams.
            _Periodic(
                "event stream wake-ups", EVENT_POLL_INTERVAL, self._wake_streams, self.clock
            ).setServiceParent(self)
        self.worker.setServiceParent(self)
        self.plugin_lifecycle = PluginLifecycle(self.plugins, self.plugin_api)
        self.plugin_lifecycle.setServiceParent(self)
        if self.primary and self.plugins.implementers("govnode_letter_event"):
            EventDispatcher(
                db=self.db,
                plugins=self.plugins,
                api=self.plugin_api,
                clock=self.clock,
                leading=lambda: self.leadership.leader,
            ).setServiceParent(self)
        # Say "govnode", not which Twisted release answers.
        server.version = b"govnode"
        agency_site = _QuietSite(
            AcyclicKleinResource(agency_api.app),
            timeout=SITE_TIMEOUT,
            requestFactory=limited_request(config.limits.max_body_bytes),
            # JSON only: no form parsing, which runs the stdlib's e-mail header
            # parser on every request's Content-Type.
            parsePOSTFormSubmission=False,
        )
        agency_site.displayTracebacks = False
        admin_site = _QuietSite(AcyclicKleinResource(admin_api.app), timeout=SITE_TIMEOUT)
        admin_site.displayTracebacks = False
        api = config.listen.api
        api_endpoint: Any = _endpoint(reactor, api)
        self.shared_api: SharedSocketEndpoint | None = None
        if config.listen.processes > 1:
            api_endpoint = self.shared_api = SharedSocketEndpoint(reactor, api, inherited=secondary)
        self.api_listener = _Listener(
            "agency api",
            api_endpoint,
            self._guard(agency=True).tls(
                self.tls, agency_site, count=partial(self.metrics.count_handshake_failure, "api")
            ),
        )
        self.api_listener.setServiceParent(self)
        self.admin_listener: _Listener | None = None
        if self.primary:
            self.admin_listener = _Listener(
                "admin", _endpoint(reactor, config.listen.admin), admin_site
            )
            self.admin_listener.setServiceParent(self)
        self._last_event: int | None = None
        self.federation_listener: _Listener | None = None
        peers = self.peers = Peers(config.peers)
        self.peer_directories: PeerDirectories | None = None
        if self.primary and config.peers:
            self.peer_directories = PeerDirectories(
                config=config, db=self.db, peers=peers, routing=self.routing, reactor=reactor
            )
        if self.primary and config.peers:
            federation_tls = self.federation_tls = ServerTLS(
                cert_path=config.tls.node_cert,
                key_path=config.tls.node_key,
                ca_path=[peer.ca_cert for peer in peers.ca_files if peer.ca_cert is not None],
                crl_path=None,
                pins=peers.pins,
            )
            federation_api = FederationApi(
                node_id=config.node.id,
                peers=peers,
                metrics=self.metrics,
                db=self.db,
                blobs=self.blobs,
                sign=self._sign,
                reactor=reactor,
                on_delivered=self._delivered,
                on_change=self.hub.notify,
                on_queued=self.worker.wake,
                routing=self.routing,
                refresh_directory=self.peer_directories.refresh_now
                if self.peer_directories
                else None,
                max_body=config.limits.max_body_bytes,
                public_key=signing.public_pem(self.authority.signing_key()).decode(),
            )
            federation_site = _QuietSite(
                AcyclicKleinResource(federation_api.app),
                timeout=SITE_TIMEOUT,
                requestFactory=limited_request(config.limits.max_body_bytes),
                parsePOSTFormSubmission=False,
            )
            federation_site.displayTracebacks = False
            self.federation_listener = _Listener(
                "federation",
                _endpoint(reactor, config.listen.federation),
                self._guard(agency=False).tls(
                    federation_tls,
                    federation_site,
                    count=partial(self.metrics.count_handshake_failure, "federation"),
                ),
            )
            self.federation_listener.setServiceParent(self)
        if config.peers:
            self.worker.sender = FederationSender(
                config=config,
                db=self.db,
                blobs=self.blobs,
                peers=peers,
                sign=self._sign,
                reactor=reactor,
                routing=self.routing,
                count_refused=lambda reason: self.metrics.federation_refused.labels(
                    reason=reason
                ).inc(),
                on_change=self.hub.notify,
                wake=self.worker.wake,
                on_outcome=self._relay_outcome,
            )
            self.worker.notice_sender = NoticeSender(
                config=config, db=self.db, sign=self._sign, reactor=reactor, routing=self.routing
            )
        self._peers_up: dict[str, bool] = {}
        if self.peer_directories is not None:
            _Periodic(
                "peer directories",
                PEER_DIRECTORY_INTERVAL,
                self.peer_directories.refresh_all,
                self.clock,
            ).setServiceParent(self)
            _Periodic(
                "peer hello", PEER_CHECK_INTERVAL, self._check_peers, self.clock
            ).setServiceParent(self)

    def _guard(self, *, agency: bool) -> Guard:
        """The `[limits]` of a TLS listener; `agency`: also those per agency."""
        node_id = self.config.node.id
        return Guard(
            self.config.limits,
            clock=self.clock,
            count_refused=lambda limit: self.metrics.limits_refused.labels(limit=limit).inc(),
            identify=agency_of(node_id) if agency else None,
            key_used=lambda code, key: self.db.read(
                letters.thd_idempotency_key_used, f"{code}@{node_id}", key
            ),
        )

    def stopService(self) -> defer.Deferred[Any]:
        """Stop the listeners, jobs and worker first, the pools they use last.

        Stopping everything at once could stop the database threads under a
        delivery batch still queued for them, which then never finished and
        neither did the shutdown.
        """
        Service.stopService(self)
        pools = [self.getServiceNamed("database"), self.getServiceNamed("ldap")]
        users = [service for service in reversed(list(self)) if service not in pools]

        def stop_all(services: list[Any]) -> defer.Deferred[Any]:
            return defer.DeferredList([defer.maybeDeferred(s.stopService) for s in services])

        if self.shared_api is not None:
            self.shared_api.close()
        return stop_all(users).addCallback(lambda _: stop_all(pools))

    async def ready(self) -> tuple[str, str]:
        """The URLs of the agency API and the admin listener, once both listen
        (and the plugins started: their failure is the node's)."""
        await self.plugin_lifecycle.started
        api_port = await self.api_listener.listening
        if self.admin_listener is None:
            return _url("https", self.config.listen.api, api_port), ""
        admin_port = await self.admin_listener.listening
        return (
            _url("https", self.config.listen.api, api_port),
            _url("http", self.config.listen.admin, admin_port),
        )

    async def federation_url(self) -> str | None:
        """The federation listener's URL once it listens; None when it is not opened."""
        if self.federation_listener is None:
            return None
        port = await self.federation_listener.listening
        return _url("https", self.config.listen.federation, port)

    async def _check_peers(self) -> None:
        """Say hello to every peer (threads: blocking TLS); metrics, and a log line
        whenever a peer goes down or comes back."""
        tls = self.config.tls
        for peer in self.config.peers:
            status = await self._in_thread(
                partial(check_peer, peer, node_cert=tls.node_cert, node_key=tls.node_key)
            )
            self.metrics.peer_up.labels(peer=peer.id).set(1 if status.ok else 0)
            if status.milliseconds is not None:
                self.metrics.peer_hello_seconds.labels(peer=peer.id).set(status.milliseconds / 1000)
            if status.certificate_expires is not None:
                left = (status.certificate_expires - self.now()).total_seconds()
                self.metrics.peer_certificate_expiry.labels(peer=peer.id).set(left)
            if status.ok and self._peers_up.get(peer.id) is False and self.worker.sender:
                await self.worker.sender.release_backlog(peer.id)
            if status.ok and not self._peers_up.get(peer.id) and self.peer_directories:
                # It may have been away: what it serves may have changed.
                await self.peer_directories.refresh_now(peer)
            if self._peers_up.get(peer.id) != status.ok:
                log = self._log.info if status.ok else self._log.error
                log(
                    "peer {peer} is {state}: {detail}",
                    peer=peer.id,
                    state="up" if status.ok else "DOWN",
                    detail=status.detail,
                )
            self._peers_up[peer.id] = status.ok

    async def _wake_streams(self) -> None:
        """Wake the event streams of addresses whose letters changed in any process."""
        try:
            if not self.hub.listeners or self._last_event is None:
                # Keep the position even with no stream open: a stream that opens
                # must hear of what committed after the look before it.
                self._last_event = await self.db.read(mailbox.thd_last_event_id)
                return
            last, addresses = await self.db.read(mailbox.thd_changed_since, self._last_event)
        except DatabaseUnavailable:
            return  # ten times a second: /healthz and the other jobs say it already
        self._last_event = last
        self.hub.notify(addresses)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    async def _check_database(self) -> None:
        await self.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar())

    async def sync_directory(self) -> int:
        """Pull every agency from LDAP into the cache; keeps the old cache on failure."""
        try:
            entries = await self.directory.fetch_agencies()
        except Exception:
            self.metrics.directory_syncs.labels(result="failed").inc()
            raise
        if not entries:
            # An empty answer is a misconfigured filter or base far more often than
            # a province without agencies: keep serving the cache we have.
            self.metrics.directory_syncs.labels(result="failed").inc()
            self._log.error(
                "directory sync found no agencies under {dn}; keeping the cache",
                dn=self.config.ldap.agencies_dn,
            )
            return 0
        kept, removed = await self.db.run(
            directory_store.thd_replace_all, entries, now=self.clock.seconds()
        )
        self.metrics.directory_syncs.labels(result="ok").inc()
        self.metrics.directory_agencies.set(kept)
        self._log.info(
            "directory synced: {kept} agencies, {removed} removed", kept=kept, removed=removed
        )
        return kept

    def _leading(self, work: Callable[[], Any]) -> Callable[[], Any]:
        """`work`, run only while this server leads the node's upkeep."""

        async def if_leading() -> None:
            if self.leadership.leader:
                await work()

        return if_leading

    async def _checkpoint(self) -> None:
        """Sign the audit chain's head, so a cut-off tail is detected too."""
        await self.db.run(audit.thd_checkpoint, self._sign, at=self.clock.seconds())

    async def _purge(self) -> None:
        """Forget expired tokens, old failed logins and attachment files no letter holds."""
        now = self.clock.seconds()
        await self.db.run(
            tokens.thd_purge, now=now, failures_before=now - self.config.limits.lockout_window
        )
        referenced = await self.db.read(letters.thd_referenced_blobs)
        removed = await self._in_thread(lambda: self.blobs.remove_orphans(referenced))
        if removed:
            self._log.info("removed {count} orphaned attachment files", count=removed)

    def _plugin_letter_registered(self, submission: Submission, sender: str) -> None:
        """A plugin sent a letter: what the API does after a registration."""
        self.metrics.letters_registered.inc()
        if any(r.address.node != self.config.node.id for r in submission.recipients):
            self.worker.wake()
        self.hub.notify([sender, *(str(r.address) for r in submission.recipients)])

    def _delivered(self, done: list[Delivered]) -> None:
        results = Counter(item.status for item in done)
        for result, count in results.items():
            self.metrics.letters_delivered.labels(result=result).inc(count)
        observe_deliveries(self.metrics, done)
        self.hub.notify([item.address for item in done] + [item.sender for item in done])

    def _relay_outcome(self, result: str, registered_at: float, recipients: int) -> None:
        """Letters handed to the next node, or given up on, by the federation sender."""
        self.metrics.letters_delivered.labels(result=result).inc(recipients)
        if result == "relayed":
            self.metrics.delivery_seconds.labels(path="relayed").observe(
                max(0.0, self.clock.seconds() - registered_at)
            )

    async def _reload_certificates(self) -> None:
        """Pick up a new CRL or certificate (revocations take effect in seconds)."""
        self._tell(await self._in_thread(self.reload_files))

    def _tell(self, outcome: tuple[bool, list[tuple[LogLevel, str]]]) -> None:
        changed, said = outcome
        for level, message in said:
            self._log.emit(level, message)
        if changed:
            self.authenticator.forget_sessions()  # a revocation must count at once

    def reload_files(self, *, force: bool = False) -> tuple[bool, list[tuple[LogLevel, str]]]:
        """The file work of a reload, on a thread: returns what to log.

        Also re-publishes the CRL before it expires: an expired CRL would make
        OpenSSL refuse every agency. `force` (SIGHUP) reloads even unchanged files.
        """
        said: list[tuple[LogLevel, str]] = []
        changed = False
        now = self.now()
        try:
            if self.primary and self.authority.crl_due(now=now):
                self.authority.publish_crl(now=now)
                said.append((LogLevel.info, "CRL re-published before its next update"))
            elif self.primary and not is_sqlite(self.db.engine) and crl_behind(self.authority):
                self.authority.publish_crl(now=now)  # another server revoked a certificate
                said.append((LogLevel.info, "CRL re-published with another server's revocations"))
        except (PkiError, DatabaseUnavailable, OSError, ValueError) as exc:
            said.append((LogLevel.error, f"cannot re-publish the CRL: {exc}"))
        try:
            if force:
                self.tls.reload()
                changed = True
                said.append((LogLevel.info, "TLS certificates and CRL reloaded (SIGHUP)"))
            elif self.tls.reload_if_changed():
                changed = True
                said.append((LogLevel.info, "TLS certificates and CRL reloaded"))
        except PkiError as exc:
            said.append((LogLevel.error, f"keeping the old TLS settings: {exc}"))
        changed = self._reload_federation(force, said) or changed
        self._gauge_expiry(now)
        return changed, said

    def _reload_federation(self, force: bool, said: list[tuple[LogLevel, str]]) -> bool:
        """The federation listener's node certificate and peers' CAs, like the agency API's."""
        if self.federation_tls is None:
            return False
        try:
            if force:
                self.federation_tls.reload()
            elif not self.federation_tls.reload_if_changed():
                return False
            self.peers.reload_cas()  # who is who, after the handshake: the same CAs
        except (PkiError, ValueError) as exc:
            said.append((LogLevel.error, f"federation: keeping the old TLS settings: {exc}"))
            return False
        said.append((LogLevel.info, "federation TLS certificate and peer CAs reloaded"))
        return True

    def _gauge_expiry(self, now: datetime) -> list[Held]:
        """Set govnode_certificate_expiry_seconds from the files; returns what was read."""
        held = held_certificates(self.config.tls)
        for item in held:
            if item.not_after is not None:
                self.metrics.certificate_expiry.labels(certificate=item.name).set(
                    (item.not_after - now).total_seconds()
                )
        return held

    async def _check_expiry(self) -> None:
        """Gauges, and a warning in the log 30 days ahead (an error once expired),
        each certificate at start and then once a day."""
        now = self.now()
        held = await self._in_thread(lambda: self._gauge_expiry(now))
        codes = await self.db.read(
            certificates.thd_agencies_expiring,
            now=now.timestamp(),
            until=(now + EXPIRY_WARNING).timestamp(),
        )
        self.metrics.agency_certificates_expiring.labels(within=f"{EXPIRY_WARNING.days}d").set(
            len(codes)
        )
        entries = [*log_entries(held, now), agencies_entry(codes)]
        for said in self._expiry_warnings.due(entries, now):
            level = LogLevel.warn if said.standing is Standing.WARN else LogLevel.error
            self._log.emit(level, "{message}", message=said.message)

    async def reload_now(self) -> None:
        """SIGHUP: reload certificates, CA and CRL whether or not they changed."""
        self._tell(await self._in_thread(lambda: self.reload_files(force=True)))
        if self.primary:  # after `agency renew`, the gauge follows at once
            try:
                await self._check_expiry()
            except DatabaseUnavailable as exc:
                self._log.error("certificate expiry: {error}", error=str(exc))

    async def _in_thread(self, work: Callable[[], T]) -> T:
        result: T = await deferToThreadPool(self._reactor, self._reactor.getThreadPool(), work)
        return result
