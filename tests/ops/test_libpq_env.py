"""pg_dump and pg_restore connect as the node does: the URL's TLS settings hold,
and the password travels in the environment, never in argv."""

from __future__ import annotations

from govnode.ops.snapshot import _libpq_env


def test_the_urls_tls_settings_and_password_reach_libpq() -> None:
    env = _libpq_env(
        "postgresql://govnode:s3cret@db.example.gov.ir:6432/govnode"
        "?sslmode=verify-full&sslrootcert=/etc/govnode/pg-ca.pem"
    )
    assert env["PGHOST"] == "db.example.gov.ir"
    assert env["PGPORT"] == "6432"
    assert env["PGUSER"] == "govnode"
    assert env["PGPASSWORD"] == "s3cret"
    assert env["PGDATABASE"] == "govnode"
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGSSLROOTCERT"] == "/etc/govnode/pg-ca.pem"
