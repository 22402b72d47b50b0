"""A node as a real `govnode serve` process, the way systemd runs it."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

READY = re.compile(
    r"^govnode ready: (?P<node>\S+) (?P<api>https://\S+) admin=(?P<admin>http://\S+)"
    r"( federation=(?P<federation>https://\S+))?( processes=(?P<processes>\d+))?$"
)


class NodeFailedToStart(RuntimeError):
    pass


class NodeProcess:
    """Starts `govnode --home HOME serve`, waits for its ready line, stops it."""

    def __init__(self, home: Path, *, log_path: Path | None = None) -> None:
        self.home = home
        self.log_path = log_path or home / "node.log"
        self.api_url = ""
        self.admin_url = ""
        self.federation_url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> NodeProcess:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "govnode.cli.main", "--home", str(self.home), "serve"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        assert self._process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.2):
                    if self._process.poll() is not None:
                        break
                    continue
                line = self._process.stdout.readline()
                if not line:
                    break
                match = READY.match(line.strip())
                if match:
                    self.api_url, self.admin_url = match["api"], match["admin"]
                    self.federation_url = match["federation"] or ""
                    return self
        self.kill()
        raise NodeFailedToStart(
            f"govnode serve did not become ready within {timeout} s; its log "
            f"{self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self, lines: int = 40) -> str:
        """The log's tail as text lines (`[namespace#level] message`), whether the
        node wrote JSON (`[log] format`, the default off a terminal) or text."""
        return "\n".join(map(_as_text, self.log_tail(lines).splitlines()))

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def secondary_pids(self) -> list[int]:
        """The processes the node started beside this one (`listen.processes`)."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(child) for child in children.split()]

    def exit_code(self) -> int | None:
        """The exit code once the process has ended, else None."""
        return None if self._process is None else self._process.poll()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self._process is None or self._process.poll() is not None:
            return self._process.returncode if self._process else None
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)

    def signal(self, signum: int) -> None:
        assert self._process is not None
        self._process.send_signal(signum)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _as_text(line: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "message" not in record:
        return line
    return f"[{record.get('namespace', '-')}#{record.get('level', '-')}] {record['message']}"
