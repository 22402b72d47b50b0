"""Several `govnode serve` processes on one API port (`listen.processes`).

Each Python process has one GIL, which TLS, HTTP and the database writer
share; a second process doubles what the node can do on two cores. The
primary binds the API socket and hands it to the secondaries it starts (as
file descriptor 3), so all accept from one queue: a busy process leaves new
connections to the others (SO_REUSEPORT would split them by hash, however
busy each is). It restarts any secondary that dies. Secondaries serve the
agency API and deliver letters; periodic upkeep (directory sync, purge,
audit checkpoints, CRL re-publication), the admin and federation listeners
stay in the primary. All share the database, whose write transactions take
turns (`WriterLock` on SQLite, an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, protocol, task
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

from govnode.config.model import Endpoint

SECONDARY_READY = "govnode secondary ready"
RESTART_DELAY = 1.0  # seconds before a secondary that died is started again (then doubling)
MAX_RESTART_DELAY = 60.0
START_ATTEMPTS = 3  # secondaries that die before they are ready, before the node gives up
STOP_TIMEOUT = 15.0  # seconds a secondary may take to stop before it is killed
SHARED_FD = 3  # where a secondary finds the API socket
PR_SET_PDEATHSIG = 1


class SharedSocketEndpoint:
    """The API socket of several processes.

    In the primary it binds the socket and keeps it open (`fileno`) for the
    secondaries; in a secondary (`inherited`) it listens on the socket it was
    given as `SHARED_FD`.
    """

    def __init__(
        self, reactor: Any, where: Endpoint, *, inherited: bool, backlog: int = 1024
    ) -> None:
        self._reactor = reactor
        self._where = where
        self._inherited = inherited
        self._backlog = backlog
        self._socket: socket.socket | None = None

    @property
    def fileno(self) -> int:
        assert self._socket is not None, "listen first"
        return self._socket.fileno()

    def close(self) -> None:
        """Stop holding the socket open for secondaries (the node is stopping)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def listen(self, factory: protocol.Factory) -> defer.Deferred[IListeningPort]:
        if self._inherited:
            with socket.socket(fileno=SHARED_FD) as inherited:
                # The reactor takes a duplicate; the inherited descriptor is closed here.
                port = self._reactor.adoptStreamPort(SHARED_FD, inherited.family, factory)
            return defer.succeed(port)
        family = socket.AF_INET6 if ":" in self._where.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._where.host, self._where.port))
            sock.listen(self._backlog)
            sock.setblocking(False)
            port = self._reactor.adoptStreamPort(sock.fileno(), family, factory)
        except OSError as exc:
            sock.close()
            return defer.fail(OSError(exc.errno, f"cannot listen on {self._where}: {exc.strerror}"))
        self._socket = sock  # kept open: the secondaries started later inherit it
        return defer.succeed(port)


def use_shared_metrics(directory: Path, *, fresh: bool) -> None:
    """Count metrics in files that every process writes and /metrics sums up.

    Must run before the first metric is made. The primary empties the
    directory at start-up (`fresh`), so counts begin at zero with the node.
    """
    from prometheus_client import values

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if fresh:
        for stale in directory.glob("*.db"):
            stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()


class _Secondary(protocol.ProcessProtocol):
    """One secondary process: says when it is ready and when it ended."""

    def __init__(self, on_ready: Callable[[], None], on_end: Callable[[int | None], None]) -> None:
        self._on_ready = on_ready
        self._on_end = on_end
        self._buffer = b""

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if line.decode("utf-8", "replace").strip() == SECONDARY_READY:
                self._on_ready()

    def processEnded(self, reason: Failure) -> None:
        self._on_end(getattr(reason.value, "exitCode", None))


class Secondaries(Service):
    """Starts `count` secondary processes on the API port and keeps them running."""

    _log = Logger()

    def __init__(self, reactor: Any, *, home: Path, api_socket: int, count: int) -> None:
        self.setName("secondary processes")
        self._reactor = reactor
        self._argv = [
            sys.executable,
            "-m",
            "govnode.cli.main",
            "--home",
            str(home),
            "serve",
            "--secondary-of",
            str(os.getpid()),
        ]
        self._api_socket = api_socket
        self._count = count
        self._processes: dict[int, Any] = {}  # slot -> IProcessTransport
        self._ended: dict[int, defer.Deferred[None]] = {}
        self._waiting: list[defer.Deferred[None]] = []
        self._not_ready = set(range(count))
        self._ready_slots: set[int] = set()
        self._failed_starts = 0
        self._delay: dict[int, float] = {}
        self._pids: dict[int, int] = {}

    def startService(self) -> None:
        super().startService()
        for slot in range(self._count):
            self._spawn(slot)

    def ready(self) -> defer.Deferred[None]:
        """Fires once every secondary has said it listens."""
        if not self._not_ready:
            return defer.succeed(None)
        waiting: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(waiting)
        return waiting

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes.values() if process.pid]

    def _spawn(self, slot: int) -> None:
        if not self.running:
            return
        self._ended[slot] = defer.Deferred()
        handler = _Secondary(lambda: self._ready(slot), lambda code: self._end(slot, code))
        self._processes[slot] = self._reactor.spawnProcess(
            handler,
            self._argv[0],
            self._argv,
            env=dict(os.environ),
            # Its log lines go where ours go; it serves the API socket we bound.
            childFDs={0: "w", 1: "r", 2: 2, SHARED_FD: self._api_socket},
        )
        self._pids[slot] = self._processes[slot].pid

    def _ready(self, slot: int) -> None:
        self._log.info("secondary process {pid} ready", pid=self._processes[slot].pid, slot=slot)
        self._ready_slots.add(slot)
        self._delay.pop(slot, None)
        self._not_ready.discard(slot)
        if not self._not_ready:
            waiting, self._waiting = self._waiting, []
            for done in waiting:
                done.callback(None)

    def _end(self, slot: int, code: int | None) -> None:
        self._processes.pop(slot, None)
        was_ready = slot in self._ready_slots
        self._ready_slots.discard(slot)
        ended = self._ended.pop(slot, None)
        if ended is not None:
            ended.callback(None)
        pid = self._pids.pop(slot, None)
        if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid)  # its "live" gauges count no more
        if not self.running:
            return
        if self._not_ready and not was_ready:
            self._failed_starts += 1
            if self._failed_starts >= START_ATTEMPTS:
                error = RuntimeError(
                    f"{self._failed_starts} secondary processes ended before they were"
                    " ready; see their errors above"
                )
                waiting, self._waiting = self._waiting, []
                for done in waiting:
                    done.errback(error)
                return
        delay = self._delay.get(slot, RESTART_DELAY)
        self._delay[slot] = min(delay * 2, MAX_RESTART_DELAY)
        self._log.error(
            "secondary process {pid} ended (exit {code}); starting another in {delay:.0f} s",
            pid=pid,
            code=code,
            delay=delay,
        )
        self._reactor.callLater(delay, self._spawn, slot)

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()
        waits = list(self._ended.values())
        for process in list(self._processes.values()):
            _signal(process, "TERM")
        killer = self._reactor.callLater(STOP_TIMEOUT, self._kill_all)
        done: defer.Deferred[Any] = defer.DeferredList(waits)
        done.addBoth(lambda result: killer.cancel() if killer.active() else None)
        return done

    def _kill_all(self) -> None:
        for process in list(self._processes.values()):
            self._log.error("secondary process {pid} did not stop; killing it", pid=process.pid)
            _signal(process, "KILL")

    def forward(self, signum: int) -> None:
        """Pass a signal on (SIGHUP: reload certificates in every process)."""
        for slot, process in list(self._processes.items()):
            # One still starting may not handle the signal yet: it would end.
            if process.pid and slot in self._ready_slots:
                os.kill(process.pid, signum)


def _signal(process: Any, name: str) -> None:
    with contextlib.suppress(ProcessExitedAlready):
        process.signalProcess(name)


def die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM the moment our parent process ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def watch_parent(reactor: Any, parent: int, *, interval: float = 1.0) -> task.LoopingCall:
    """A secondary stops when its primary `parent` is gone (killed without a chance
    to stop it), also if it was gone before this process got this far."""

    def check() -> None:
        if os.getppid() != parent:
            Logger().error("primary process {pid} is gone; stopping", pid=parent)
            loop.stop()
            reactor.callLater(STOP_TIMEOUT, os._exit, 1)  # a clean stop, or none at all
            reactor.stop()

    loop = task.LoopingCall(check)
    loop.clock = reactor
    loop.start(interval, now=True)
    return loop
