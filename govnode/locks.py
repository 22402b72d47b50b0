"""Locks that hold across the node's processes (`flock` on a file) and its threads."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class FileLock:
    """An exclusive lock shared by every thread and process that uses the same file.

    Threads of one process are serialized by a mutex first (a `flock` belongs
    to the open file, not the thread). The file is opened read-only and made
    readable by all, so whichever user creates it (root running a CLI command,
    the daemon's own user) never locks the others out.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._mutex.acquire()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            self._mutex.release()
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            self._mutex.release()
            raise
        self._fd = fd

    def __exit__(self, *_exc: object) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing releases the flock
        self._mutex.release()


class AlreadyHeld(Exception):
    """Another process holds the lock."""


def hold(path: Path) -> int:
    """Take `path`'s lock for as long as this process lives; returns the descriptor.

    Raises AlreadyHeld at once if another process has it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyHeld(str(path)) from None
    return fd
