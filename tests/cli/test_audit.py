"""`govnode audit verify` on a node home, as an auditor runs it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from govnode.testing.databases import home_engine
from tests.cli.support import Govnode


def test_audit_verify_reports_an_intact_log_then_the_first_broken_record(
    govnode: Govnode, node_home: Path, tmp_path: Path
) -> None:
    assert govnode("agency", "enroll", "edu", "--out", tmp_path / "edu").code == 0
    assert govnode("agency", "enroll", "welfare", "--out", tmp_path / "welfare").code == 0
    assert govnode("agency", "revoke", "edu").code == 0
    intact = govnode("audit", "verify")
    assert intact.code == 0, intact.out
    assert "audit log intact: 3 records" in intact.out
    engine = home_engine(node_home)
    with engine.begin() as database:
        database.execute(text("UPDATE audit SET subject = 'roads' WHERE id = 2"))
    engine.dispose()
    broken = govnode("audit", "verify")
    assert broken.code == 1
    assert "BROKEN at record 2" in broken.out
