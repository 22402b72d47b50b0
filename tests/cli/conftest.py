"""Node homes for the CLI tests: each test gets its own, against the session's slapd.

`govnode init` takes a few hundredths of a second, so a fresh home per test
costs little and lets every test enroll, revoke and break its home freely.
The session slapd (`govnode_slapd`) is only read; tests that stop or change
the directory start their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from govnode.testing.home import init_home, sync_directory
from govnode.testing.slapd import Slapd
from tests.cli.support import Govnode


@pytest.fixture
def node_home(tmp_path: Path, govnode_slapd: Slapd) -> Path:
    """An initialised home whose directory cache holds the demo province."""
    home = tmp_path / "kb"
    sync_directory(init_home(home, govnode_slapd))
    return home


@pytest.fixture
def govnode(capsys: pytest.CaptureFixture[str], node_home: Path) -> Govnode:
    """`govnode --home <node_home> ...`."""
    return Govnode(capsys, node_home)
