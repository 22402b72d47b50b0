"""The province's LDAP directory, through ldap3, off the reactor thread.

Each operation opens its own connection inside one thread call and closes it
before returning, so no connection is ever shared between threads, and a
directory that went away and came back is simply reached again next time.
All network waits are bounded by the configured connect/receive timeouts.
"""

from __future__ import annotations

import math
import secrets
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPException,
    LDAPInvalidCredentialsResult,
    LDAPNoSuchObjectResult,
    LDAPResponseTimeoutError,
    LDAPSizeLimitExceededResult,
    LDAPSocketReceiveError,
)
from ldap3.utils.dn import parse_dn
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from govnode.config.model import LdapSection
from govnode.directory.errors import DirectoryUnavailable, InvalidCredentials
from govnode.directory.filters import login_filter
from govnode.domain.agency import Agency, is_agency_code

T = TypeVar("T")
LatencyObserver = Callable[[str, float], None]
MAX_USERNAME = 256


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a successful login is: the agency, and the user inside it."""

    agency: str
    user: str
    dn: str


def _first(entry: Any, attribute: str) -> str | None:
    values = entry["attributes"].get(attribute)
    if isinstance(values, list):
        return str(values[0]) if values else None
    return None if values is None else str(values)


def unavailable_kind(exc: DirectoryUnavailable) -> str:
    """unreachable (no server answered), timeout, service_account (our bind refused)
    or other: what an operator looks at first."""
    cause = exc.__cause__
    if isinstance(cause, LDAPInvalidCredentialsResult):
        return "service_account"
    if cause is None:
        return "unreachable"
    if isinstance(cause, LDAPResponseTimeoutError | LDAPSocketReceiveError | TimeoutError):
        return "timeout"
    return "other"


class LdapDirectory:
    """Search-then-bind login and agency listing against the configured directory."""

    _log = Logger()

    def __init__(
        self,
        config: LdapSection,
        *,
        reactor: IReactorThreads | None = None,
        observe_latency: LatencyObserver | None = None,
        count_error: Callable[[str, str], None] | None = None,
    ) -> None:
        """`count_error(operation, kind)`: an operation found the directory unavailable."""
        self._config = config
        self._reactor = reactor
        self._observe = observe_latency or (lambda _op, _seconds: None)
        self._count_error = count_error or (lambda _op, _kind: None)
        self._pool = ThreadPool(minthreads=0, maxthreads=config.pool_size, name="govnode-ldap")
        attributes = config.attributes
        self._agency_attributes = [
            attributes.code,
            attributes.name_fa,
            attributes.name_en,
            attributes.kind,
            attributes.phase,
            attributes.parent,
            attributes.county,
        ]

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._pool.start()

    def stop(self) -> None:
        self._pool.stop()

    async def _in_thread(self, operation: str, fn: Callable[[], T]) -> T:
        assert self._reactor is not None, "LdapDirectory needs a reactor for async calls"

        def timed() -> T:
            started = time.monotonic()
            try:
                return fn()
            except DirectoryUnavailable as exc:
                self._count_error(operation, unavailable_kind(exc))
                raise
            finally:
                self._observe(operation, time.monotonic() - started)

        result: T = await deferToThreadPool(self._reactor, self._pool, timed)
        return result

    # -- connections ---------------------------------------------------------

    def _servers(self) -> list[Server]:
        # Always verify: ldaps:// and StartTLS check the directory's certificate
        # against `ca_file`, or the system's CAs when none is set.
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(self._config.ca_file) if self._config.ca_file else None,
        )
        # New Server objects every time: ldap3 remembers a refused address for a
        # while, and a directory that came back must be usable at once.
        return [
            Server(url, connect_timeout=self._config.connect_timeout, tls=tls, get_info=NONE)
            for url in self._config.urls
        ]

    def _open(self, dn: str, password: str) -> Connection:
        """An open connection to the first server that answers (ldap3's ServerPool
        sleeps between rounds; this costs at most one connect timeout per server)."""
        failures = []
        for server in self._servers():
            conn = Connection(
                server,
                user=dn,
                password=password,
                # ldap3 packs this into SO_RCVTIMEO and needs whole seconds.
                receive_timeout=max(1, math.ceil(self._config.receive_timeout)),
                raise_exceptions=True,
                read_only=True,
            )
            try:
                conn.open()
                if self._config.start_tls:
                    conn.start_tls()
            except (LDAPException, OSError) as exc:
                failures.append(f"{server.host}:{server.port}: {exc}")
                with suppress(LDAPException, OSError):
                    conn.unbind()
                continue
            return conn
        raise DirectoryUnavailable("LDAP unreachable: " + "; ".join(failures))

    @contextmanager
    def _connection(self, dn: str, password: str) -> Iterator[Connection]:
        """A bound connection; LDAP failures other than bad credentials mean unavailable."""
        conn = self._open(dn, password)
        try:
            conn.bind()
            yield conn
        except LDAPInvalidCredentialsResult:
            raise
        except (LDAPException, OSError) as exc:
            raise DirectoryUnavailable(f"LDAP: {exc}") from exc
        finally:
            with suppress(LDAPException, OSError):
                conn.unbind()

    @contextmanager
    def _service(self) -> Iterator[Connection]:
        try:
            with self._connection(self._config.bind_dn, self._config.bind_password) as conn:
                yield conn
        except LDAPInvalidCredentialsResult as exc:
            # Our own account was refused: the node is misconfigured, not the client.
            raise DirectoryUnavailable(
                f"LDAP refused the service account {self._config.bind_dn}"
            ) from exc

    # -- login ---------------------------------------------------------------

    def authenticate_sync(
        self, username: str, password: str, *, within: str | None = None
    ) -> Identity:
        """Search-then-bind: exactly one entry must match, then bind as it.

        `within` confines the search to one agency's subtree (the agency of
        the client certificate), so a login can never probe another agency's
        accounts. When nothing matches, a bind is still made (to a DN that does
        not exist), so an unknown user costs what a wrong password costs.
        """
        if not username or not password or len(username) > MAX_USERNAME:
            raise InvalidCredentials("empty or oversized credentials")
        attributes = self._config.attributes
        search_filter = login_filter(self._config.user_filter, attributes.code, username)
        with self._service() as conn:
            try:
                conn.search(
                    within or self._config.agencies_dn,
                    search_filter,
                    SUBTREE,
                    attributes=[attributes.code, attributes.kind],
                    size_limit=2,
                )
                entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
            except LDAPSizeLimitExceededResult:
                entries = [None, None]  # more than one: ambiguous
            except LDAPNoSuchObjectResult:
                entries = []  # `within` names an agency gone from the directory
            entry = entries[0] if len(entries) == 1 else None
            agency = self._agency_of(conn, entry) if entry is not None else None
        dn = (
            entry["dn"]
            if entry is not None
            else f"uid={secrets.token_hex(8)},{self._config.base_dn}"
        )
        try:
            with self._connection(dn, password):
                pass
        except LDAPInvalidCredentialsResult:
            raise InvalidCredentials(
                "wrong password" if entry else f"{len(entries)} entries match"
            ) from None
        if entry is None or agency is None:
            raise InvalidCredentials(f"{len(entries)} entries match")
        user = _first(entry, attributes.code) or username
        return Identity(agency=agency, user=user, dn=dn)

    def _agency_of(self, conn: Connection, entry: Any) -> str | None:
        """The agency an entry belongs to: itself, or the nearest agency above it."""
        attributes = self._config.attributes
        if _first(entry, attributes.kind) is not None:
            code = _first(entry, attributes.code)
            if code and is_agency_code(code):
                return code
        rdns = parse_dn(entry["dn"])
        base_depth = len(parse_dn(self._config.agencies_dn))
        for depth in range(1, len(rdns) - base_depth):
            # parse_dn keeps each value in its escaped DN form, so joining is exact.
            ancestor = ",".join(f"{attr}={value}" for attr, value, _ in rdns[depth:])
            conn.search(
                ancestor,
                self._config.agency_filter,
                BASE,
                attributes=[attributes.code],
            )
            found = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
            if found:
                code = _first(found[0], attributes.code)
                if code and is_agency_code(code):
                    return code
        return None  # the entry belongs to no agency

    async def authenticate(
        self, username: str, password: str, *, within: str | None = None
    ) -> Identity:
        return await self._in_thread(
            "bind", lambda: self.authenticate_sync(username, password, within=within)
        )

    # -- agencies ------------------------------------------------------------

    def fetch_agencies_sync(self) -> list[tuple[Agency, str]]:
        """Every agency under `agencies_dn` with its DN; malformed entries are skipped."""
        with self._service() as conn:
            entries = conn.extend.standard.paged_search(
                self._config.agencies_dn,
                self._config.agency_filter,
                SUBTREE,
                attributes=self._agency_attributes,
                paged_size=500,
                generator=False,
            )
            found: dict[str, tuple[Agency, str]] = {}
            for entry in entries:
                if entry.get("type") != "searchResEntry":
                    continue
                agency = self._agency_from_entry(entry)
                if agency is None:
                    continue
                if agency.code in found:
                    self._log.warn(
                        "directory entry {dn} skipped: code {code} is already used by {other}",
                        dn=entry["dn"],
                        code=agency.code,
                        other=found[agency.code][1],
                    )
                    continue
                found[agency.code] = (agency, entry["dn"])
        return list(found.values())

    def _agency_from_entry(self, entry: Any) -> Agency | None:
        attributes = self._config.attributes
        code = _first(entry, attributes.code)
        phase = _first(entry, attributes.phase)
        name_fa = _first(entry, attributes.name_fa)
        kind = _first(entry, attributes.kind)
        if not code or not is_agency_code(code) or not name_fa or not kind:
            self._log.warn(
                "directory entry {dn} skipped: no valid code, name or kind", dn=entry["dn"]
            )
            return None
        if phase not in ("1", "2", "3"):
            self._log.warn(
                "directory entry {dn} skipped: phase {phase!r} is not 1, 2 or 3",
                dn=entry["dn"],
                phase=phase,
            )
            return None
        return Agency(
            code=code,
            name_fa=name_fa,
            name_en=_first(entry, attributes.name_en) or "",
            kind=kind,
            phase=int(phase),
            parent=_first(entry, attributes.parent),
            county=_first(entry, attributes.county),
        )

    async def fetch_agencies(self) -> list[tuple[Agency, str]]:
        return await self._in_thread("search", self.fetch_agencies_sync)

    def ping_sync(self) -> None:
        """Bind as the service account; raises `DirectoryUnavailable` when that fails."""
        with self._service():
            pass

    async def ping(self) -> None:
        await self._in_thread("ping", self.ping_sync)
