"""Bearer tokens (stored as SHA-256 hashes) and failed-login bookkeeping."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, delete, func, or_, select, update

from govnode.domain.lockout import locked_for
from govnode.store.records import TokenRecord
from govnode.store.schema import login_failures, tokens


def thd_create(
    conn: Connection,
    *,
    token_hash: str,
    agency: str,
    user: str,
    now: float,
    expires_at: float,
    client_fingerprint: str | None,
) -> None:
    conn.execute(
        tokens.insert().values(
            token_hash=token_hash,
            agency=agency,
            user=user,
            created_at=now,
            expires_at=expires_at,
            revoked=False,
            client_fingerprint=client_fingerprint,
        )
    )


def thd_find(conn: Connection, token_hash: str, *, now: float) -> TokenRecord | None:
    """The live token with this hash: not revoked, not expired."""
    row = conn.execute(
        select(tokens.c.agency, tokens.c.user, tokens.c.expires_at, tokens.c.client_fingerprint)
        .where(tokens.c.token_hash == token_hash)
        .where(tokens.c.revoked.is_(False))
        .where(tokens.c.expires_at > now)
    ).first()
    return TokenRecord(*row) if row else None


def thd_revoke(conn: Connection, token_hash: str) -> bool:
    result = conn.execute(
        update(tokens).where(tokens.c.token_hash == token_hash).values(revoked=True)
    )
    return result.rowcount > 0


def thd_purge(conn: Connection, *, now: float, failures_before: float) -> None:
    """Forget expired tokens and failures older than any lockout window."""
    conn.execute(delete(tokens).where(tokens.c.expires_at <= now))
    conn.execute(delete(login_failures).where(login_failures.c.at < failures_before))


PENDING_FOR = 60.0  # seconds after which an attempt still pending is a crashed process's


def thd_begin_attempt(
    conn: Connection, username: str, *, now: float, limit: int, window: float
) -> tuple[float, int | None]:
    """Record a login attempt as pending, unless the username is locked out or busy.

    Returns (seconds locked, None) when `limit` failures lie in the window;
    (0, None) when the failures and the attempts still pending (in other
    node processes: one process asks for one username at a time) reach the
    limit, so that the caller waits for their outcome; else (0, id of the
    attempt). Guesses spread over processes cannot all slip in under the
    limit, and right passwords arriving together are not taken for guesses.
    """
    wait = locked_for(
        thd_failures_since(conn, username, now - window), now=now, limit=limit, window=window
    )
    if wait > 0:
        return wait, None
    under_way = conn.scalar(
        select(func.count())
        .select_from(login_failures)
        .where(
            login_failures.c.username == username,
            login_failures.c.pending.is_(True),
            login_failures.c.at > now - PENDING_FOR,
        )
    )
    failures = len(thd_failures_since(conn, username, now - window))
    if failures + int(under_way or 0) >= limit:
        return 0.0, None
    attempt = conn.execute(
        login_failures.insert()
        .values(username=username, at=now, pending=True)
        .returning(login_failures.c.id)
    ).scalar_one()
    return 0.0, int(attempt)


def thd_attempt_failed(conn: Connection, attempt: int) -> None:
    """The attempt's password was wrong: it counts as a failure from now on."""
    conn.execute(update(login_failures).where(login_failures.c.id == attempt).values(pending=False))


def thd_forget_attempt(conn: Connection, attempt: int) -> None:
    conn.execute(delete(login_failures).where(login_failures.c.id == attempt))


def thd_revoke_agency(conn: Connection, agency: str) -> int:
    """Revoke every token of an agency (its certificate was revoked)."""
    result = conn.execute(
        update(tokens)
        .where(tokens.c.agency == agency, tokens.c.revoked.is_(False))
        .values(revoked=True)
    )
    return result.rowcount


def thd_failures_since(conn: Connection, username: str, since: float) -> list[float]:
    """Times of failed logins for `username` after `since`, oldest first."""
    return list(
        conn.scalars(
            select(login_failures.c.at)
            .where(
                login_failures.c.username == username,
                login_failures.c.at > since,
                login_failures.c.pending.is_(False),
            )
            .order_by(login_failures.c.at)
        )
    )


def thd_record_failure(conn: Connection, username: str, *, now: float) -> None:
    conn.execute(login_failures.insert().values(username=username, at=now))


def thd_clear_failures(conn: Connection, username: str, *, attempt: int | None = None) -> None:
    """Forget the username's failures (and `attempt`); others' pending attempts stay."""
    finished: ColumnElement[bool] = login_failures.c.pending.is_(False)
    if attempt is not None:
        finished = or_(finished, login_failures.c.id == attempt)
    conn.execute(
        delete(login_failures).where(login_failures.c.username == username).where(finished)
    )
