"""Logins and bearer tokens: LDAP once per login, the database for every request."""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from govnode.api.errors import ApiError, unauthenticated, unavailable
from govnode.api.metrics import Metrics
from govnode.config.model import LimitsSection
from govnode.directory.errors import DirectoryUnavailable, InvalidCredentials
from govnode.directory.ldap import LdapDirectory
from govnode.domain.lockout import locked_for
from govnode.store import tokens
from govnode.store.database import Database
from govnode.store.records import TokenRecord

TOKEN_BYTES = 32  # 256 random bits


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
    ) -> None:
        self._db = db
        self._directory = directory
        self._clock = clock
        self._limits = limits
        self._metrics = metrics

    async def login(self, username: str, password: str, client: Client) -> Session:
        """Check the credentials against LDAP and issue a token, or raise an ApiError."""
        # LDAP matches uid case-insensitively, so the lock must too.
        key = username.strip().casefold()
        now = self._clock.seconds()
        window = self._limits.lockout_window
        failures = await self._db.read(tokens.thd_failures_since, key, now - window)
        wait = locked_for(failures, now=now, limit=self._limits.lockout_failures, window=window)
        if wait > 0:
            self._metrics.logins.labels(result="locked").inc()
            self._log.warn(
                "login refused: {username!r} is locked out for {wait:.0f} s (cert {cert})",
                username=username,
                wait=wait,
                cert=client.agency,
            )
            raise ApiError(
                429,
                "locked_out",
                f"too many failed logins for this username; try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        try:
            identity = await self._directory.authenticate(username, password)
        except InvalidCredentials as exc:
            self._metrics.logins.labels(result="failure").inc()
            await self._db.run(tokens.thd_record_failure, key, now=self._clock.seconds())
            self._log.warn(
                "login failed for {username!r}: {reason} (cert {cert})",
                username=username,
                reason=str(exc),
                cert=client.agency,
            )
            raise ApiError(401, "invalid_credentials", "wrong username or password") from None
        except DirectoryUnavailable as exc:
            self._metrics.logins.labels(result="unavailable").inc()
            self._log.error(
                "login of {username!r} impossible: {error}", username=username, error=str(exc)
            )
            raise unavailable("the directory (LDAP)") from None
        if client.agency is not None and client.agency != identity.agency:
            self._metrics.logins.labels(result="failure").inc()
            self._log.warn(
                "login of {user!r} of agency {agency} refused over the certificate of {cert}",
                user=identity.user,
                agency=identity.agency,
                cert=client.agency,
            )
            raise agency_mismatch(identity.agency, client.agency)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock.seconds()
        expires_at = now + self._limits.token_ttl
        await self._db.run(tokens.thd_clear_failures, key)
        await self._db.run(
            tokens.thd_create,
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

    async def check(self, token: str, client: Client) -> TokenRecord:
        """The live token behind `Authorization: Bearer`, or 401/403; no LDAP call."""
        record = await self._db.read(tokens.thd_find, token_hash(token), now=self._clock.seconds())
        if record is None:
            raise unauthenticated("the token is unknown, expired or revoked")
        if client.agency is not None and client.agency != record.agency:
            raise agency_mismatch(record.agency, client.agency)
        return record

    async def logout(self, token: str) -> None:
        await self._db.run(tokens.thd_revoke, token_hash(token))
