"""Prometheus metrics of one node (its own registry, so tests can run several).

With several processes (`listen.processes`), each writes its counts to files
(`govnode.processes.use_shared_metrics`) and /metrics adds them up.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.logins = Counter(
            "govnode_logins",
            "Login attempts by result (success, failure, locked, unavailable)",
            ["result"],
            registry=self.registry,
        )
        self.ldap_seconds = Histogram(
            "govnode_ldap_request_seconds",
            "Time spent in LDAP operations",
            ["operation"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.directory_syncs = Counter(
            "govnode_directory_syncs",
            "Directory syncs from LDAP by result (ok, failed)",
            ["result"],
            registry=self.registry,
        )
        self.directory_agencies = Gauge(
            "govnode_directory_agencies",
            "Agencies in the directory cache after the last sync",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.certificate_expiry = Gauge(
            "govnode_certificate_expiry_seconds",
            "Seconds until a node certificate (ca, server, node) or the CRL (crl) expires",
            ["certificate"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.agency_certificates_expiring = Gauge(
            "govnode_agency_certificates_expiring",
            "Agencies whose newest valid certificate expires within the window (30d)",
            ["within"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.letters_registered = Counter(
            "govnode_letters_registered", "Letters registered", registry=self.registry
        )
        self.letters_delivered = Counter(
            "govnode_letters_delivered",
            "Recipients reached or given up on, by result (delivered, relayed, failed, expired)",
            ["result"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "govnode_api_errors",
            "Error answers of the agency API by error code",
            ["code"],
            registry=self.registry,
        )
        self.federation_refused = Counter(
            "govnode_federation_refused",
            "Envelopes refused from peers, by reason (bad_signature, unknown_origin, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.peer_up = Gauge(
            "govnode_peer_up",
            "1 when the peer answered the last hello as itself, else 0",
            ["peer"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.peer_hello_seconds = Gauge(
            "govnode_peer_hello_seconds",
            "Time the last successful hello to the peer took",
            ["peer"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.peer_certificate_expiry = Gauge(
            "govnode_peer_certificate_expiry_seconds",
            "Seconds until the peer's node certificate (as last seen) expires",
            ["peer"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

        self.plugin_hook_errors = Counter(
            "govnode_plugin_hook_errors",
            "Failures of plugins (hooks, routes, scheduled work), by plugin and hook",
            ["plugin", "hook"],
            registry=self.registry,
        )

        # The letter path, the queues, refused handshakes and LDAP failures.
        self.submit_seconds = Histogram(
            "govnode_submit_seconds",
            "Time from a letter's request to its 201 answer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "govnode_delivery_seconds",
            "Time from registration to the inbox (local) or to the next node (relayed)",
            ["path"],
            buckets=(0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600, 86400, 5 * 86400),
            registry=self.registry,
        )
        self.queue_recipients = Gauge(
            "govnode_queue_recipients",
            "Recipients waiting for another node, per destination node (held ones too)",
            ["destination"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.queue_oldest_seconds = Gauge(
            "govnode_queue_oldest_seconds",
            "Age of the oldest letter waiting for the destination node (0: none waits)",
            ["destination"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.ldap_errors = Counter(
            "govnode_ldap_errors",
            "LDAP operations that failed, by operation and kind "
            "(unreachable, timeout, service_account, other)",
            ["operation", "kind"],
            registry=self.registry,
        )
        self.start_time = Gauge(
            "govnode_start_time_seconds",
            "When the node's primary process started (Unix time), labelled with the node id",
            ["node"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.tls_handshake_failures = Counter(
            "govnode_tls_handshake_failures",
            "TLS handshakes refused, by listener and reason "
            "(no_certificate, unknown_ca, expired, revoked, other)",
            ["listener", "reason"],
            registry=self.registry,
        )
        self.limits_refused = Counter(
            "govnode_limits_refused",
            "Connections and requests refused or cut off by a [limits] setting, by limit",
            ["limit"],
            registry=self.registry,
        )

    def count_plugin_error(self, plugin: str, hook: str) -> None:
        self.plugin_hook_errors.labels(plugin=plugin, hook=hook).inc()

    def observe_ldap(self, operation: str, seconds: float) -> None:
        self.ldap_seconds.labels(operation=operation).observe(seconds)

    def count_ldap_error(self, operation: str, kind: str) -> None:
        self.ldap_errors.labels(operation=operation, kind=kind).inc()

    def count_handshake_failure(self, listener: str, reason: str) -> None:
        self.tls_handshake_failures.labels(listener=listener, reason=reason).inc()

    def render(self) -> bytes:
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not shared:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared)
        return generate_latest(registry)
