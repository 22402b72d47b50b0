"""Logins and bearer tokens: LDAP once per login, the database for every request."""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection
from twisted.internet.defer import DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from govnode.api.errors import ApiError, invalid_field, unauthenticated, unavailable
from govnode.api.metrics import Metrics
from govnode.config.model import LimitsSection
from govnode.directory.errors import DirectoryUnavailable, InvalidCredentials
from govnode.directory.ldap import MAX_USERNAME, LdapDirectory
from govnode.store import audit, certificates, directory, tokens
from govnode.store.database import Database
from govnode.store.records import TokenRecord

TOKEN_BYTES = 32  # 256 random bits
BUSY_WAIT = 15.0  # seconds a login waits for other processes' attempts for its username
BUSY_POLL = 0.05
SESSION_CACHE_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    agency: str
    user: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Client:
    """What the TLS layer says about the caller: its certificate's agency, if any."""

    agency: str | None
    fingerprint: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def agency_mismatch(token_agency: str, cert_agency: str) -> ApiError:
    return ApiError(
        403,
        "agency_mismatch",
        f"this login belongs to agency {token_agency!r}, the client certificate to {cert_agency!r}",
    )


T = TypeVar("T")


class OneAtATime:
    """Runs the calls for one key one after another; keys no call waits on are forgotten.

    Login attempts for one username are serialized so that each sees the
    outcome of the one before: parallel guesses cannot slip in under the
    lockout, and parallel right passwords are not mistaken for guesses.
    """

    def __init__(self) -> None:
        self._locks: dict[str, DeferredLock] = {}

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        lock = self._locks.setdefault(key, DeferredLock())
        await lock.acquire()
        try:
            return await call()
        finally:
            lock.release()  # hands the lock straight to the next waiter, if any
            # That waiter may have finished (and forgotten the key) already.
            if not lock.locked and self._locks.get(key) is lock:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class Authenticator:
    _log = Logger()

    def __init__(
        self,
        *,
        db: Database,
        directory: LdapDirectory,
        clock: IReactorTime,
        limits: LimitsSection,
        metrics: Metrics,
        session_ttl: float = 2.0,
    ) -> None:
        self._db = db
        self._directory = directory
        self._clock = clock
        self._limits = limits
        self._metrics = metrics
        # (token hash, certificate) -> (token, certificate usable, checked at). Saves a
        # database read per request; a revocation is seen within `session_ttl` seconds
        # (the CRL reload interval), and at once when the node reloads the CRL.
        self._sessions: dict[tuple[str, str | None], tuple[TokenRecord | None, bool, float]] = {}
        self._session_ttl = session_ttl
        self._attempts = OneAtATime()

    async def login(self, username: str, password: str, client: Client) -> Session:
        """Check the credentials against LDAP and issue a token, or raise an ApiError."""
        if len(username) > MAX_USERNAME:
            raise invalid_field("username", f"username is longer than {MAX_USERNAME} characters")
        # LDAP matches uid case-insensitively, so the lock must too.
        key = username.strip().casefold()
        return await self._attempts.run(key, lambda: self._attempt(key, username, password, client))

    async def _begin_attempt(self, key: str, now: float) -> tuple[float, int | None]:
        """Record the attempt; while other processes' attempts for this username
        could, with this one, reach the lockout limit, wait for their outcome."""
        deadline = self._clock.seconds() + BUSY_WAIT
        while True:
            wait, attempt = await self._db.run(
                tokens.thd_begin_attempt,
                key,
                now=now,
                limit=self._limits.lockout_failures,
                window=self._limits.lockout_window,
            )
            if wait > 0 or attempt is not None:
                return wait, attempt
            if self._clock.seconds() > deadline:
                raise unavailable("logins (too many at once for this username)")
            await deferLater(self._clock, BUSY_POLL, lambda: None)
            now = self._clock.seconds()

    async def _attempt(self, key: str, username: str, password: str, client: Client) -> Session:
        now = self._clock.seconds()
        within = await self._certificate_agency_dn(client, now)
        wait, attempt = await self._begin_attempt(key, now)
        if attempt is None:
            self._refuse(
                "locked", "{username!r} is locked out for {wait:.0f} s", username, client, wait=wait
            )
            raise ApiError(
                429,
                "locked_out",
                f"too many failed logins for this username; try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        try:
            identity = await self._directory.authenticate(username, password, within=within)
        except InvalidCredentials as exc:
            self._refuse("failure", "{reason}", username, client, reason=str(exc))
            await self._db.run(_thd_login_failed, username, str(exc), client, attempt, at=now)
            raise ApiError(401, "invalid_credentials", "wrong username or password") from None
        except DirectoryUnavailable as exc:
            await self._db.run(tokens.thd_forget_attempt, attempt)  # not the user's failure
            self._refuse("unavailable", "{error}", username, client, error=str(exc))
            raise unavailable("the directory (LDAP)") from None
        if client.agency is not None and client.agency != identity.agency:
            # Unreachable while logins are confined to the certificate's agency; the
            # same answer as a wrong password if the directory ever nests agencies.
            self._refuse("failure", "belongs to {agency}", username, client, agency=identity.agency)
            raise ApiError(401, "invalid_credentials", "wrong username or password")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.seconds()
        expires_at = now + self._limits.token_ttl
        await self._db.run(
            _thd_logged_in,
            key,
            attempt,
            token_hash=token_hash(token),
            agency=identity.agency,
            user=identity.user,
            now=now,
            expires_at=expires_at,
            client_fingerprint=client.fingerprint,
        )
        self._metrics.logins.labels(result="success").inc()
        self._log.info(
            "login of {user!r} for agency {agency} (cert {cert} {fingerprint})",
            user=identity.user,
            agency=identity.agency,
            cert=client.agency,
            fingerprint=client.fingerprint,
        )
        return Session(
            token=token, agency=identity.agency, user=identity.user, expires_at=expires_at
        )

    def _refuse(
        self, result: str, why: str, username: str, client: Client, **fields: object
    ) -> None:
        """Count and log a refused login with the agency and certificate that tried."""
        self._metrics.logins.labels(result=result).inc()
        fields.setdefault("agency", client.agency)
        self._log.warn(
            "login of {username!r} refused ("
            + result
            + ": "
            + why
            + "), cert {cert} {fingerprint}",
            username=username,
            cert=client.agency,
            fingerprint=client.fingerprint,
            **fields,
        )

    async def _certificate_agency_dn(self, client: Client, now: float) -> str | None:
        """The directory entry that logins over this certificate are confined to."""
        if client.fingerprint is None:
            return None
        usable, dn = await self._db.read(_thd_certificate_agency, client, now=now)
        if not usable:
            raise ApiError(403, "forbidden", "this client certificate is revoked or unknown")
        return dn

    async def check(self, token: str, client: Client) -> TokenRecord:
        """The live token behind `Authorization: Bearer`, or 401/403; no LDAP call.

        The certificate is checked again on every request: a connection opened
        before its certificate was revoked must not keep working.
        """
        hashed = token_hash(token)
        now = self._clock.seconds()
        cached = self._sessions.get((hashed, client.fingerprint))
        if cached is not None and now - cached[2] < self._session_ttl:
            record, usable = cached[0], cached[1]
        else:
            record, usable = await self._db.read(_thd_session, hashed, client, now=now)
            if len(self._sessions) >= SESSION_CACHE_SIZE:
                self._sessions.clear()
            self._sessions[(hashed, client.fingerprint)] = (record, usable, now)
        if record is not None and record.expires_at <= now:
            record = None
        if not usable:
            raise ApiError(403, "forbidden", "this client certificate is revoked or unknown")
        if record is None:
            raise unauthenticated("the token is unknown, expired or revoked")
        if client.agency is not None and client.agency != record.agency:
            raise agency_mismatch(record.agency, client.agency)
        if client.fingerprint is not None and record.client_fingerprint not in (
            None,
            client.fingerprint,
        ):
            raise unauthenticated("the token was issued over another client certificate")
        return record

    async def logout(self, token: str) -> None:
        hashed = token_hash(token)
        await self._db.run(tokens.thd_revoke, hashed)
        for key in [key for key in self._sessions if key[0] == hashed]:
            del self._sessions[key]

    def forget_sessions(self) -> None:
        """Drop every cached session check (the CRL changed: look again)."""
        self._sessions.clear()


def _thd_logged_in(conn: Connection, key: str, attempt: int, /, **token: Any) -> None:
    """A success clears the username's failures and stores the token, atomically."""
    tokens.thd_clear_failures(conn, key, attempt=attempt)
    tokens.thd_create(conn, **token)
    audit.thd_append(
        conn,
        "login.success",
        actor=f"{token['user']}@{token['agency']}",
        subject=token["agency"],
        at=token["now"],
        detail={"certificate": token["client_fingerprint"]},
    )


def _thd_login_failed(
    conn: Connection, username: str, reason: str, client: Client, attempt: int, *, at: float
) -> None:
    tokens.thd_attempt_failed(conn, attempt)
    audit.thd_append(
        conn,
        "login.failure",
        actor=username[:160],
        subject=client.agency or "-",
        at=at,
        detail={"reason": reason, "certificate": client.fingerprint},
    )


def _thd_session(
    conn: Connection, hashed: str, client: Client, *, now: float
) -> tuple[TokenRecord | None, bool]:
    usable = client.fingerprint is None or certificates.thd_usable(
        conn, client.fingerprint, now=now
    )
    return tokens.thd_find(conn, hashed, now=now), usable


def _thd_certificate_agency(
    conn: Connection, client: Client, *, now: float
) -> tuple[bool, str | None]:
    assert client.fingerprint is not None
    if not certificates.thd_usable(conn, client.fingerprint, now=now):
        return False, None
    record = directory.thd_get(conn, client.agency, now=now) if client.agency else None
    return True, record.dn if record else None
