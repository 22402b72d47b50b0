"""A database password in `database.url` never reaches the screen or the logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import make_url

from govnode.testing.databases import create_postgres_database, postgres_admin_url
from govnode.testing.home import configure, free_port, set_line
from govnode.testing.slapd import Slapd
from tests.cli.support import Govnode, run_process

PASSWORD = "Pa55-never-shown"


def test_commands_that_name_the_database_hide_its_password(govnode: Govnode) -> None:
    port = free_port()  # nothing listens there: every command reports the database
    configure(govnode.home, url=f"postgresql://govnode:{PASSWORD}@127.0.0.1:{port}/govnode")
    shown = f"postgresql://govnode:***@127.0.0.1:{port}/govnode"

    check = govnode("check")
    assert check.code == 1
    assert f"FAIL   database {shown} unreachable" in check.out
    for argv in (("db", "upgrade"), ("agency", "list"), ("directory", "sync")):
        result = govnode(*argv)
        assert result.code == 1, argv
        assert shown in result.err, argv
        assert PASSWORD not in result.out + result.err, argv
    assert PASSWORD not in check.out + check.err

    served = run_process(govnode.home, "serve")
    assert served.returncode != 0
    assert "Traceback" not in served.stderr
    assert PASSWORD not in served.stdout + served.stderr


def test_a_refused_database_url_is_named_without_its_password(govnode: Govnode) -> None:
    set_line(govnode.home, f'url = "mysql://govnode:{PASSWORD}@db.example/govnode"')
    result = govnode("check")
    assert result.code == 2
    assert "database.url" in result.err
    assert "mysql://govnode:***@db.example/govnode" in result.err
    assert PASSWORD not in result.out + result.err


@pytest.mark.postgresql_only
def test_a_working_postgresql_database_is_reported_without_its_password(
    govnode: Govnode, tmp_path: Path, govnode_slapd: Slapd
) -> None:
    admin = postgres_admin_url()
    assert admin is not None
    # The test cluster's own password (scripts/test makes one for each run).
    url = make_url(create_postgres_database(admin, "password"))
    secret = url.password
    assert isinstance(secret, str)
    assert len(secret) >= 16
    configure(govnode.home, url=url.render_as_string(hide_password=False))
    assert govnode("db", "upgrade").code == 0
    assert govnode("directory", "sync").code == 0
    check = govnode("check")
    assert check.code == 0, check.out
    assert f"ok    database {url.render_as_string(hide_password=True)}" in check.out
    assert "***" in check.out
    assert secret not in check.out + check.err
