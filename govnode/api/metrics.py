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
            "Seconds until a node certificate expires",
            ["certificate"],
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.letters_registered = Counter(
            "govnode_letters_registered", "Letters registered", registry=self.registry
        )
        self.letters_delivered = Counter(
            "govnode_letters_delivered",
            "Recipients reached or given up on, by result (delivered, failed)",
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

    def render(self) -> bytes:
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not shared:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=shared)
        return generate_latest(registry)
