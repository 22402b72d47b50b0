"""File locks hold across processes (a real second process tries them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from govnode.locks import AlreadyHeld, FileLock, hold

TRY = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("held")
else:
    print("free")
"""


def other_process_finds(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY, str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_file_lock_excludes_other_processes_while_held(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "writer.lock")
    with lock:
        assert other_process_finds(lock.path) == "held"
    assert other_process_finds(lock.path) == "free"
    assert (lock.path.stat().st_mode & 0o777) == 0o644  # any user may take it


def test_holding_refuses_a_second_holder_at_once(tmp_path: Path) -> None:
    path = tmp_path / "serve.lock"
    fd = hold(path)
    try:
        assert other_process_finds(path) == "held"
        with pytest.raises(AlreadyHeld):
            hold(path)
    finally:
        import os

        os.close(fd)
    assert other_process_finds(path) == "free"
