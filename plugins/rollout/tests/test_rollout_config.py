"""A wrong `[plugins.rollout]` stops `govnode` with the file and the key named.

The operator runs `govnode check` after editing the file, or the rollout
command itself; both must point at the line to fix, and exit non-zero.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rollout_support import govnode

from govnode.testing.home import enable_plugins, init_home
from govnode.testing.slapd import Slapd


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, govnode_slapd: Slapd) -> Path:
    home = tmp_path_factory.mktemp("rollout-config") / "kb"
    init_home(home, govnode_slapd)
    return home


@pytest.mark.parametrize(
    ("command", "phases", "problem"),
    [
        (
            ("check",),
            {"1": "1404/10/01", "4": "1405/01/01"},
            "plugins.rollout.phases.4: is not a phase; the phases are 1, 2, 3",
        ),
        (
            ("rollout", "status"),
            {"1": "1404/10/01", "2": "1405/13/01"},
            "plugins.rollout.phases.2: '1405/13/01' is not a date: write 1405/09/03 (Jalali) "
            "or 2026-11-24 (Gregorian)",
        ),
    ],
)
def test_a_bad_phase_names_the_file_and_key(
    home: Path, command: tuple[str, ...], phases: dict[str, str], problem: str
) -> None:
    enable_plugins(home, {"rollout": {"phases": phases}})
    done = govnode(home, *command)
    assert done.returncode != 0
    assert f"{home / 'govnode.toml'}: {problem}" in done.stderr
    assert done.stdout == ""
