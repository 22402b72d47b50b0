"""The commented `govnode.toml` that `govnode init` writes (and `etc/govnode.toml` shows)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


def _toml(value: object) -> str:
    """A TOML literal for a string or list of strings (JSON strings are valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class InitValues:
    node_id: str = "kb"
    node_name: str = "استانداری کهگیلویه و بویراحمد"
    api_listen: str = "127.0.0.1:8443"
    admin_listen: str = "127.0.0.1:8081"
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    ldap_urls: tuple[str, ...] = ("ldaps://ldap.example.gov.ir",)
    ldap_base_dn: str = "dc=kb,dc=gov,dc=ir"
    ldap_bind_dn: str = "cn=govnode,ou=services,dc=kb,dc=gov,dc=ir"
    ldap_password_file: str = "secrets/ldap-bind-password"  # noqa: S105 - a path
    database_url: str = "sqlite:///data/govnode.db"
    data_dir: str = "data"
    plugins: tuple[str, ...] = field(default_factory=tuple)


def render_config(v: InitValues) -> str:
    return f"""\
# govnode node configuration. Relative paths are relative to this file's folder.
# Every key is shown with its default (or the value `govnode init` was given);
# change a value and restart the node (`govnode check` validates the file).

[node]
# Short lowercase node id, part of every address (edu@kb) and registration number.
id = {_toml(v.node_id)}
# Human name of the node (Persian is fine).
name = {_toml(v.node_name)}
# Where the database (SQLite), attachments and other state live.
data_dir = {_toml(v.data_dir)}
# Where attachment files live (default: data_dir/attachments). Several servers
# sharing one PostgreSQL database must share this folder too (NFS or the like).
# attachments_dir = "data/attachments"

[listen]
# The agency API (HTTPS with client certificates). Use 0.0.0.0:8443 to serve the network.
api = {_toml(v.api_listen)}
# /healthz and /metrics, plain HTTP: keep it on loopback or a management network.
admin = {_toml(v.admin_listen)}
# Processes that serve the agency API, sharing its port (each has its own
# Python interpreter; they share the database). 0: one per CPU core, at most 4.
processes = 0
# Federation: other nodes (the [[peers]] below) connect here with their node
# certificates. Only opened when peers are configured.
federation = "127.0.0.1:8444"

[tls]
# The node CA (issues agency certificates) and the server certificate.
ca_cert = "pki/ca.pem"
ca_key = "pki/ca.key"
server_cert = "pki/server.pem"
server_key = "pki/server.key"
# The node certificate (names the node; server and client): federation with peers.
node_cert = "pki/node.pem"
node_key = "pki/node.key"
# Revoked certificates; checked in every handshake, re-read within reload_interval.
crl = "pki/crl.pem"
# The node's signing key: audit checkpoints (and, with federation, envelopes).
signing_key = "pki/signing.key"
# Refuse connections without a valid, unrevoked client certificate of this CA.
require_client_cert = true
# DNS names and IP addresses the server certificate names (`govnode cert renew server`).
server_names = {_toml(list(v.server_names))}
# Validity of agency certificates issued by `govnode agency enroll`, in days.
agency_cert_days = 730
# Seconds between checks for a changed CRL or certificate.
reload_interval = 2.0

[ldap]
# One or more servers, tried in order (ldaps:// in production, or ldap:// with start_tls).
urls = {_toml(list(v.ldap_urls))}
base_dn = {_toml(v.ldap_base_dn)}
# Where agency entries (and their users below them) live.
agencies_dn = {_toml("ou=agencies," + v.ldap_base_dn)}
# The service account that searches the directory, and the file holding its password.
bind_dn = {_toml(v.ldap_bind_dn)}
bind_password_file = {_toml(v.ldap_password_file)}
start_tls = false
# CA bundle to verify the LDAP server's certificate (ldaps:// or start_tls).
# ca_file = "/etc/ssl/certs/province-ca.pem"
# Which entries are agencies, and which entries may log in.
agency_filter = "(&(objectClass=inetOrgPerson)(businessCategory=*))"
user_filter = "(objectClass=inetOrgPerson)"
connect_timeout = 5.0
receive_timeout = 5.0
# Seconds between directory syncs into the node's cache (also at start and on
# `govnode directory sync`).
sync_interval = 300.0
# Threads for LDAP calls (logins run in parallel up to this many).
pool_size = 4

[ldap.attributes]
# Which attribute holds each agency field. The defaults use standard schema
# (inetOrgPerson); etc/ldap/govnode.schema offers dedicated attributes instead.
code = "uid"
name_fa = "o"
name_en = "cn"
kind = "businessCategory"
phase = "employeeType"
parent = "ou"
county = "l"

[database]
# sqlite:///PATH (embedded default) or postgresql://user@host/db (production).
url = {_toml(v.database_url)}
pool_size = 8

[limits]
# Bearer token lifetime, seconds.
token_ttl = 28800
# Lock a username out after this many failed logins within lockout_window seconds.
lockout_failures = 5
lockout_window = 900
# Largest request body and largest single attachment (decoded), bytes.
max_body_bytes = 67108864
max_attachment_bytes = 20971520
# Seconds an event-stream client may stop reading before it is disconnected
# (nothing is buffered for it meanwhile).
event_stream_stall = 30.0
# Abuse limits, each per API process (listen.processes multiplies them).
# Connections open at once; more are closed on arrival (TLS handshake fails).
max_connections = 1000
# Connections and requests in progress at once per agency (known by its client
# certificate); over them: 429 rate_limited. Event streams count as connections only.
max_connections_per_agency = 64
max_requests_per_agency = 32
# Request head limits: bytes of all header lines (431), header lines (431),
# URL bytes (414).
max_header_bytes = 16384
max_headers = 100
max_url_bytes = 8192
# Seconds for the TLS handshake, for a whole request head (a client trickling
# it is cut off with 408), and a connection may stay silent (keep-alive idle,
# or mid-body; not event streams).
handshake_timeout = 10.0
header_timeout = 10.0
idle_timeout = 60.0
# Letters (POST /api/v1/letters) per agency: a token bucket refilled at this
# rate, holding up to the burst; over it: 429 with Retry-After. A retry with the
# Idempotency-Key of a letter already accepted is never refused.
submissions_per_minute = 30000
submissions_burst = 5000

[plugins]
# Names of installed plugins (entry-point group govnode.plugins) to load.
enabled = {_toml(list(v.plugins))}
# Plugins never to load, even when installed.
blocked = []

[log]
# "json": one JSON object per line (time, level, message, letter_id, agency,
# peer, ...) for journald and log shippers; "text": Twisted's text lines;
# "auto": JSON unless stderr is a terminal. Bodies, subjects, passwords and
# tokens are never logged.
format = "auto"
# debug (every letter registered and delivered), info, warn, error or critical.
level = "info"

[federation]
# Where letters for other nodes go, like a mail relay host. A province sends
# everything to the national center: default_route = "center" (a peer below).
# "-": no default route (letters for unknown nodes are refused with 422).
default_route = "-"
# Next hops by destination node, before the default: {{ fars = "center" }}.
routes = {{}}
# Retries of a peer that does not answer: exponential backoff, seconds.
retry_min = 300
retry_max = 3600
# A letter not handed on within this many seconds expires (the sender sees why).
lifetime = 432000

# One [[peers]] table per node this one talks to directly, for example:
# [[peers]]
# id = "center"
# url = "https://center.example.gov.ir:8443"
# ca_cert = "peers/center-ca.pem"  # or fingerprint = "<SHA-256 of its node certificate, hex>"
# signing_key = "peers/center-signing.pem"  # its public key: checks its envelopes and receipts
# max_concurrency = 4
"""
