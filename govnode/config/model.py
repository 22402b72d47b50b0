"""The node's configuration as frozen, typed values (one class per section)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class NodeSection:
    id: str
    name: str
    data_dir: Path
    # Where attachment files live; None: data_dir/attachments. Several servers
    # sharing one PostgreSQL point this at shared storage.
    attachments_dir: Path | None = None

    @property
    def attachments(self) -> Path:
        return self.attachments_dir or self.data_dir / "attachments"


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ListenSection:
    api: Endpoint
    admin: Endpoint
    processes: int = 1  # processes sharing the API port; 0 in the file: one per CPU core
    federation: Endpoint = Endpoint("127.0.0.1", 8444)  # peers' port (with [[peers]] only)


@dataclass(frozen=True, slots=True)
class TlsSection:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    node_cert: Path
    node_key: Path
    crl: Path
    signing_key: Path
    require_client_cert: bool
    server_names: tuple[str, ...]
    agency_cert_days: int
    reload_interval: float


@dataclass(frozen=True, slots=True)
class AttributeMap:
    """Which LDAP attribute holds each agency field (defaults: standard schema)."""

    code: str = "uid"
    name_fa: str = "o"
    name_en: str = "cn"
    kind: str = "businessCategory"
    phase: str = "employeeType"
    parent: str = "ou"
    county: str = "l"


@dataclass(frozen=True, slots=True)
class LdapSection:
    urls: tuple[str, ...]
    base_dn: str
    agencies_dn: str
    bind_dn: str
    bind_password: str = field(repr=False)
    start_tls: bool
    ca_file: Path | None
    agency_filter: str
    user_filter: str
    attributes: AttributeMap
    connect_timeout: float
    receive_timeout: float
    sync_interval: float
    pool_size: int


@dataclass(frozen=True, slots=True)
class DatabaseSection:
    url: str
    pool_size: int


@dataclass(frozen=True, slots=True)
class LimitsSection:
    token_ttl: int
    lockout_failures: int
    lockout_window: int
    max_body_bytes: int
    max_attachment_bytes: int
    event_stream_stall: float
    # Abuse limits (govnode/api/guard.py), each per API process.
    max_connections: int = 1000
    max_connections_per_agency: int = 64
    max_requests_per_agency: int = 32
    max_header_bytes: int = 16384
    max_headers: int = 100
    max_url_bytes: int = 8192
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    submissions_per_minute: int = 30000
    submissions_burst: int = 5000


@dataclass(frozen=True, slots=True)
class PluginsSection:
    enabled: tuple[str, ...]
    blocked: tuple[str, ...]
    settings: dict[str, dict[str, object]] = field(hash=False)


@dataclass(frozen=True, slots=True)
class PeerSection:
    """A node this one exchanges letters with directly (`[[peers]]`)."""

    id: str
    url: str  # https://host:port of its federation endpoint
    ca_cert: Path | None  # the CA that issued its node certificate...
    fingerprint: str | None  # ...or the SHA-256 pin of that certificate (hex)
    signing_key: Path  # its public signing key: verifies its envelopes and receipts
    max_concurrency: int = 4
    defined_in: Path | None = None  # govnode.toml or peers.toml (`govnode peer add`)


@dataclass(frozen=True, slots=True)
class FederationSection:
    routes: Mapping[str, str] = field(default_factory=dict)  # destination node -> peer
    default_route: str | None = None  # the peer for every other node (the center)
    retry_min: float = 300.0
    retry_max: float = 3600.0
    lifetime: float = 5 * 86400.0  # then a letter expires with a reason


LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
"""`[log] level` values, from the most talkative (Twisted's level names)."""


@dataclass(frozen=True, slots=True)
class LogSection:
    format: str = "auto"  # json, text, or auto: json unless stderr is a terminal
    level: str = "info"  # debug, info, warn, error, critical


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    node: NodeSection
    listen: ListenSection
    tls: TlsSection
    ldap: LdapSection
    database: DatabaseSection
    limits: LimitsSection
    plugins: PluginsSection
    federation: FederationSection = field(default_factory=FederationSection)
    peers: tuple[PeerSection, ...] = ()
    log: LogSection = field(default_factory=LogSection)

    @property
    def home(self) -> Path:
        return self.path.parent
