"""Reading `govnode.toml` into a `Config`.

Every value is checked here, once, so the rest of the node can trust its
configuration. Relative paths are relative to the directory of the file (the
node's home). Secrets are read from the files the config names.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from govnode.config.errors import ConfigError
from govnode.config.model import (
    LOG_LEVELS,
    AttributeMap,
    Config,
    DatabaseSection,
    Endpoint,
    FederationSection,
    LdapSection,
    LimitsSection,
    ListenSection,
    LogSection,
    NodeSection,
    PeerSection,
    PluginsSection,
    TlsSection,
)
from govnode.domain.agency import is_node_id
from govnode.store.urls import shown_url

T = TypeVar("T")
CONFIG_NAME = "govnode.toml"
PEERS_NAME = "peers.toml"  # peers added with `govnode peer add`, beside CONFIG_NAME
_MiB = 1024 * 1024


class _Section:
    """One table of the file; reads typed keys and remembers which were used."""

    def __init__(self, path: Path, prefix: str, table: Mapping[str, Any]) -> None:
        self.path = path
        self.prefix = prefix
        self.table = table
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.path, self.key(name), message)

    def _get(self, name: str, kind: type[T], default: T | None, what: str) -> T:
        self.used.add(name)
        if name not in self.table:
            if default is None:
                # `urlz = [...]` for `urls`: name the misspelled key, not the missing one.
                unknown = [key for key in self.table if key not in self.used]
                for guess in difflib.get_close_matches(name, unknown, n=1):
                    raise self.error(guess, f"is not a known setting; did you mean {name!r}?")
                raise self.error(name, "is required")
            return default
        value = self.table[name]
        # bool is an int in Python; a port of `true` is still wrong.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(name, f"must be {what}, not {type(value).__name__} {value!r}")
        return value

    def string(self, name: str, default: str | None = None) -> str:
        value = self._get(name, str, default, "a string")
        if not value.strip():
            raise self.error(name, "must not be empty")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        return self._get(name, bool, default, "true or false")

    def integer(self, name: str, default: int | None, *, minimum: int, maximum: int) -> int:
        value = self._get(name, int, default, "a whole number")
        if not minimum <= value <= maximum:
            raise self.error(name, f"must be between {minimum} and {maximum}, not {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        self.used.add(name)
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"must be a number of seconds, not {value!r}")
        if not minimum <= value <= maximum:
            raise self.error(name, f"must be between {minimum} and {maximum}, not {value}")
        return float(value)

    def strings(self, name: str, default: tuple[str, ...] | None) -> tuple[str, ...]:
        value = self._get(name, list, list(default) if default is not None else None, "a list")
        if not all(isinstance(item, str) and item.strip() for item in value):
            raise self.error(name, "must be a list of non-empty strings")
        return tuple(value)

    def path_of(self, name: str, default: str | None = None) -> Path:
        value = Path(self.string(name, default))
        return value if value.is_absolute() else (self.path.parent / value)

    def table_of(self, name: str) -> _Section:
        self.used.add(name)
        value = self.table.get(name, {})
        if not isinstance(value, dict):
            raise self.error(name, "must be a table")
        return _Section(self.path, self.key(name), value)

    def check_unknown(self) -> None:
        for name in self.table:
            if name not in self.used:
                raise self.error(name, "is not a known setting (misspelled?)")


Section = _Section
"""A table of the file with typed, checked reads (plugins' settings build on it)."""


def _endpoint(section: _Section, name: str, default: str) -> Endpoint:
    text = section.string(name, default)
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise section.error(name, f"must be host:port (127.0.0.1:8443), not {text!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise section.error(name, f"host must be an IP address, not {host!r}") from None
    return Endpoint(host=host, port=int(port))


def _secret(section: _Section, name: str, read: bool) -> str:
    path = section.path_of(name)
    if not read:
        return ""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise section.error(name, f"cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise section.error(name, f"{path} is empty")
    return secret


def default_processes() -> int:
    """One API process per CPU this process may use (affinity, cgroup cpusets), at most 4:
    SQLite has one writer at a time, and more processes than cores only contend."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def _node(s: _Section) -> NodeSection:
    node_id = s.string("id")
    if not is_node_id(node_id):
        raise s.error("id", f"must be a short lowercase name like 'kb', not {node_id!r}")
    data_dir = s.path_of("data_dir", "data")
    attachments = s.path_of("attachments_dir") if "attachments_dir" in s.table else None
    return NodeSection(
        id=node_id, name=s.string("name"), data_dir=data_dir, attachments_dir=attachments
    )


def _tls(s: _Section) -> TlsSection:
    return TlsSection(
        ca_cert=s.path_of("ca_cert", "pki/ca.pem"),
        ca_key=s.path_of("ca_key", "pki/ca.key"),
        server_cert=s.path_of("server_cert", "pki/server.pem"),
        server_key=s.path_of("server_key", "pki/server.key"),
        node_cert=s.path_of("node_cert", "pki/node.pem"),
        node_key=s.path_of("node_key", "pki/node.key"),
        crl=s.path_of("crl", "pki/crl.pem"),
        signing_key=s.path_of("signing_key", "pki/signing.key"),
        require_client_cert=s.boolean("require_client_cert", True),
        server_names=s.strings("server_names", ("localhost", "127.0.0.1")),
        agency_cert_days=s.integer("agency_cert_days", 730, minimum=1, maximum=3650),
        reload_interval=s.number("reload_interval", 2.0, minimum=0.1, maximum=3600),
    )


def _ldap(s: _Section, read_secrets: bool) -> LdapSection:
    urls = s.strings("urls", None)
    for index, url in enumerate(urls):
        if not url.startswith(("ldap://", "ldaps://")):
            raise s.error(f"urls[{index}]", f"must start with ldap:// or ldaps://, not {url!r}")
    base_dn = s.string("base_dn")
    attributes = s.table_of("attributes")
    defaults = AttributeMap()
    attribute_map = AttributeMap(
        **{name: attributes.string(name, getattr(defaults, name)) for name in defaults.__slots__}
    )
    attributes.check_unknown()
    ca_file = s.path_of("ca_file") if "ca_file" in s.table else None
    s.used.add("ca_file")
    return LdapSection(
        urls=urls,
        base_dn=base_dn,
        agencies_dn=s.string("agencies_dn", f"ou=agencies,{base_dn}"),
        bind_dn=s.string("bind_dn"),
        bind_password=_secret(s, "bind_password_file", read_secrets),
        start_tls=s.boolean("start_tls", False),
        ca_file=ca_file,
        agency_filter=s.string(
            "agency_filter", f"(&(objectClass=inetOrgPerson)({attribute_map.kind}=*))"
        ),
        user_filter=s.string("user_filter", "(objectClass=inetOrgPerson)"),
        attributes=attribute_map,
        connect_timeout=s.number("connect_timeout", 5.0, minimum=0.1, maximum=120),
        receive_timeout=s.number("receive_timeout", 5.0, minimum=0.1, maximum=120),
        sync_interval=s.number("sync_interval", 300.0, minimum=1, maximum=86400),
        pool_size=s.integer("pool_size", 4, minimum=1, maximum=64),
    )


def _database(s: _Section, data_dir: Path) -> DatabaseSection:
    url = s.string("url", f"sqlite:///{data_dir / 'govnode.db'}")
    if not url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
        raise s.error("url", f"must be sqlite:///PATH or postgresql://..., not {shown_url(url)!r}")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # A relative SQLite path is relative to the home, like every other path.
        url = f"sqlite:///{s.path.parent / url.removeprefix('sqlite:///')}"
    return DatabaseSection(url=url, pool_size=s.integer("pool_size", 8, minimum=1, maximum=128))


def _limits(s: _Section) -> LimitsSection:
    return LimitsSection(
        token_ttl=s.integer("token_ttl", 8 * 3600, minimum=60, maximum=30 * 86400),
        lockout_failures=s.integer("lockout_failures", 5, minimum=1, maximum=1000),
        lockout_window=s.integer("lockout_window", 15 * 60, minimum=1, maximum=86400),
        max_body_bytes=s.integer("max_body_bytes", 64 * _MiB, minimum=1024, maximum=2048 * _MiB),
        max_attachment_bytes=s.integer(
            "max_attachment_bytes", 20 * _MiB, minimum=1, maximum=2048 * _MiB
        ),
        event_stream_stall=s.number("event_stream_stall", 30.0, minimum=0.5, maximum=3600),
        **_abuse_limits(s),
    )


def _abuse_limits(s: _Section) -> dict[str, Any]:
    """The connection, header, timeout and rate limits of `[limits]` (api/guard.py)."""
    total = s.integer("max_connections", 1000, minimum=1, maximum=1_000_000)
    per_agency = s.integer("max_connections_per_agency", 64, minimum=1, maximum=1_000_000)
    if per_agency > total:
        raise s.error(
            "max_connections_per_agency",
            f"must not be more than limits.max_connections ({total}), not {per_agency}",
        )
    return {
        "max_connections": total,
        "max_connections_per_agency": per_agency,
        "max_requests_per_agency": s.integer(
            "max_requests_per_agency", 32, minimum=1, maximum=1_000_000
        ),
        "max_header_bytes": s.integer("max_header_bytes", 16384, minimum=1024, maximum=_MiB),
        "max_headers": s.integer("max_headers", 100, minimum=10, maximum=10_000),
        "max_url_bytes": s.integer("max_url_bytes", 8192, minimum=256, maximum=_MiB),
        "handshake_timeout": s.number("handshake_timeout", 10.0, minimum=0.5, maximum=600),
        "header_timeout": s.number("header_timeout", 10.0, minimum=0.5, maximum=600),
        "idle_timeout": s.number("idle_timeout", 60.0, minimum=0.5, maximum=86400),
        "submissions_per_minute": s.integer(
            "submissions_per_minute", 30000, minimum=1, maximum=10_000_000
        ),
        "submissions_burst": s.integer("submissions_burst", 5000, minimum=1, maximum=10_000_000),
    }


def _plugins(s: _Section) -> PluginsSection:
    settings = {name: value for name, value in s.table.items() if isinstance(value, dict)}
    s.used.update(settings)
    return PluginsSection(
        enabled=s.strings("enabled", ()), blocked=s.strings("blocked", ()), settings=settings
    )


def _peers(
    root: _Section, own_id: str, elsewhere: tuple[PeerSection, ...] = ()
) -> tuple[PeerSection, ...]:
    """The `[[peers]]` of one file; `elsewhere`: those another file already configures."""
    root.used.add("peers")
    tables = root.table.get("peers", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise root.error("peers", "must be a list of tables ([[peers]])")
    peers: list[PeerSection] = []
    for index, table in enumerate(tables):
        s = _Section(root.path, f"peers[{index}]", table)
        peer_id = s.string("id")
        if not is_node_id(peer_id) or peer_id == own_id:
            raise s.error(
                "id", f"must be another node's id (lowercase letters, digits, -), not {peer_id!r}"
            )
        if any(peer.id == peer_id for peer in peers):
            raise s.error("id", f"peer {peer_id!r} is configured twice")
        for other in elsewhere:
            if other.id == peer_id:
                raise s.error(
                    "id", f"peer {peer_id!r} is also configured in {other.defined_in}; keep one"
                )
        url = s.string("url")
        if not url.startswith("https://"):
            raise s.error("url", f"must be an https:// URL, not {url!r}")
        ca_cert = s.path_of("ca_cert") if "ca_cert" in table else None
        fingerprint = (
            s.string("fingerprint").lower().replace(":", "") if "fingerprint" in table else None
        )
        if (ca_cert is None) == (fingerprint is None):
            raise s.error(
                "ca_cert", "give either ca_cert (the peer's CA) or fingerprint (a pin), one of them"
            )
        if fingerprint is not None and (
            len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint)
        ):
            raise s.error("fingerprint", "must be the SHA-256 of the peer's certificate in hex")
        peers.append(
            PeerSection(
                id=peer_id,
                url=url.rstrip("/"),
                ca_cert=ca_cert,
                fingerprint=fingerprint,
                signing_key=s.path_of("signing_key"),
                max_concurrency=s.integer("max_concurrency", 4, minimum=1, maximum=256),
                defined_in=root.path,
            )
        )
        s.check_unknown()
    return tuple(peers)


def _all_peers(
    root: _Section, own_id: str, peers_file: tuple[Path, Mapping[str, Any]] | None
) -> tuple[PeerSection, ...]:
    peers = _peers(root, own_id)
    if peers_file is None:
        return peers
    added = _Section(peers_file[0], "", peers_file[1])
    peers += _peers(added, own_id, elsewhere=peers)
    added.check_unknown()
    return peers


def _federation(s: _Section, peers: tuple[PeerSection, ...]) -> FederationSection:
    known = {peer.id for peer in peers}
    routes_table = s.table_of("routes")
    routes: dict[str, str] = {}
    for destination in routes_table.table:
        hop = routes_table.string(destination)
        if not is_node_id(destination):
            raise routes_table.error(destination, "must be a node id")
        if hop not in known:
            raise routes_table.error(destination, f"next hop {hop!r} is not a configured peer")
        routes[destination] = hop
    default = s.string("default_route", "-")
    if default != "-" and default not in known:
        raise s.error("default_route", f"{default!r} is not a configured peer")
    retry_min = s.number("retry_min", 300.0, minimum=1, maximum=86400)
    retry_max = s.number("retry_max", 3600.0, minimum=1, maximum=7 * 86400)
    if retry_max < retry_min:
        raise s.error("retry_max", f"must not be less than retry_min ({retry_min:g})")
    return FederationSection(
        routes=routes,
        default_route=None if default == "-" else default,
        retry_min=retry_min,
        retry_max=retry_max,
        lifetime=s.number("lifetime", 5 * 86400.0, minimum=60, maximum=90 * 86400),
    )


def _log(s: _Section) -> LogSection:
    format_ = s.string("format", "auto")
    if format_ not in ("auto", "json", "text"):
        raise s.error("format", f'must be "json", "text" or "auto", not {format_!r}')
    level = s.string("level", "info")
    if level not in LOG_LEVELS:
        raise s.error("level", f"must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    return LogSection(format=format_, level=level)


def _section(root: _Section, name: str, build: Callable[[_Section], T]) -> T:
    section = root.table_of(name)
    value = build(section)
    section.check_unknown()
    return value


def parse_config(
    path: Path,
    document: Mapping[str, Any],
    *,
    read_secrets: bool = True,
    peers_file: tuple[Path, Mapping[str, Any]] | None = None,
) -> Config:
    """Build a `Config` from an already parsed TOML document.

    `read_secrets=False` leaves secrets empty, for commands that need none.
    `peers_file`: the parsed `peers.toml` (`govnode peer add`), whose peers
    join those of `[[peers]]`, so routes may name either.
    """
    root = _Section(path, "", document)
    node = _section(root, "node", _node)
    config = Config(
        path=path,
        node=node,
        listen=_section(
            root,
            "listen",
            lambda s: ListenSection(
                api=_endpoint(s, "api", "127.0.0.1:8443"),
                admin=_endpoint(s, "admin", "127.0.0.1:8081"),
                processes=s.integer("processes", 0, minimum=0, maximum=64) or default_processes(),
                federation=_endpoint(s, "federation", "127.0.0.1:8444"),
            ),
        ),
        tls=_section(root, "tls", _tls),
        ldap=_section(root, "ldap", lambda s: _ldap(s, read_secrets)),
        database=_section(root, "database", lambda s: _database(s, node.data_dir)),
        limits=_section(root, "limits", _limits),
        plugins=_section(root, "plugins", _plugins),
        peers=(peers := _all_peers(root, node.id, peers_file)),
        federation=_section(root, "federation", lambda s: _federation(s, peers)),
        log=_section(root, "log", _log),
    )
    root.check_unknown()
    return config


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a document; raises `ConfigError` naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, None, "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, None, f"is not valid TOML: {exc}") from None


def load_config(path: Path, *, read_secrets: bool = True) -> Config:
    """Read and check `path`, and `peers.toml` beside it when there is one; raises
    `ConfigError` naming the file and key."""
    path = path.absolute()
    document = read_toml(path)
    peers_path = path.parent / PEERS_NAME
    peers_file = (peers_path, read_toml(peers_path)) if peers_path.exists() else None
    return parse_config(path, document, read_secrets=read_secrets, peers_file=peers_file)
