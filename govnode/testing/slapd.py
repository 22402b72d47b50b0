"""A private OpenLDAP slapd on a loopback port, for tests and the demo.

The directory client is tested against the real server it will meet in
production, not a mock: `Slapd` writes a `slapd.conf` into its own working
directory, loads LDIF offline with `slapadd`, and runs slapd in the foreground
as a child process that it stops again. Nothing listens beyond 127.0.0.1 and
every wait is bounded.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import ldap3
from ldap3.core.exceptions import LDAPException

from govnode.domain.agency import Agency
from govnode.testing.demo_data import demo_password
from govnode.testing.ldif import agencies_ldif, ssha

__all__ = ["DEMO_SERVICE_PASSWORD", "Slapd", "SlapdError", "SlapdNotFound", "find_slapd"]

DEMO_SERVICE_PASSWORD = "demo-service"
"""The service account's password in tests and the demo; never a real secret."""

_PROGRAM_DIRS = (Path("/usr/sbin"), Path("/usr/local/sbin"))
"""Where slapd lives when PATH lacks the sbin directories (Debian: /usr/sbin)."""

_SCHEMA_DIRS = (Path("/etc/ldap/schema"), Path("/etc/openldap/schema"))
"""Debian first, then RHEL/Alpine."""

_MODULE_DIRS = (Path("/usr/lib/ldap"), Path("/usr/lib64/openldap"), Path("/usr/lib/openldap"))
"""Debian builds back_mdb as a module in /usr/lib/ldap; elsewhere it may be built in."""

_BASE_SCHEMAS = ("core", "cosine", "nis", "inetorgperson")
_MAXSIZE = 16 * 1024 * 1024  # mdb map size; sparse on disk, ample for a demo province
_STOP_GRACE = 10.0
_TOOL_TIMEOUT = 60.0


class SlapdNotFound(RuntimeError):
    """The OpenLDAP server binaries are not installed."""


class SlapdError(RuntimeError):
    """slapd or slapadd failed; the message carries their output."""


def _find_program(name: str) -> Path:
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    for directory in _PROGRAM_DIRS:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise SlapdNotFound(
        f"{name} not found in PATH or {', '.join(map(str, _PROGRAM_DIRS))}: "
        "install the Debian package `slapd` (apt-get install slapd ldap-utils)"
    )


def find_slapd() -> Path:
    """The slapd binary, from PATH or /usr/sbin (which a user's PATH often lacks)."""
    return _find_program("slapd")


def _find_slapadd(slapd: Path) -> Path:
    beside = slapd.with_name("slapadd")
    return beside if beside.is_file() else _find_program("slapadd")


def _schema_dir() -> Path:
    for directory in _SCHEMA_DIRS:
        if (directory / "core.schema").is_file():
            return directory
    raise SlapdNotFound(
        f"OpenLDAP schema files not found in {', '.join(map(str, _SCHEMA_DIRS))}: "
        "install the Debian package `slapd`"
    )


def _module_dir() -> Path | None:
    """The directory holding back_mdb, or None when slapd has it built in."""
    for directory in _MODULE_DIRS:
        if any(directory.glob("back_mdb.*")):
            return directory
    return None


def _free_port() -> int:
    """A loopback port that is free now; the caller keeps it for its lifetime."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _quote(value: str | Path) -> str:
    """A slapd.conf argument: double-quoted, with backslash and quote escaped."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop slapd: SIGTERM lets it close the database cleanly; SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=_STOP_GRACE)


class Slapd:
    """One private slapd: seed it, start it, stop it, start it again on the same URL."""

    def __init__(
        self,
        workdir: Path,
        *,
        base_dn: str = "dc=kb,dc=gov,dc=ir",
        service_password: str = DEMO_SERVICE_PASSWORD,
        port: int = 0,
        extra_schema: Sequence[Path] = (),
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self._workdir = workdir.resolve()
        # (certificate, key): also serve ldaps:// and StartTLS, as production does.
        self._tls = tls
        self._ldaps_port = _free_port() if tls else 0
        self._base_dn = base_dn
        self._service_password = service_password
        # Chosen once: a test that stops the directory brings it back on the same URL.
        self._port = port or _free_port()
        self._extra_schema = tuple(path.resolve() for path in extra_schema)
        self._root_password = secrets.token_urlsafe(24)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._reaper: weakref.finalize[[subprocess.Popen[bytes]], Slapd] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self._port}"

    @property
    def ldaps_url(self) -> str:
        """`ldaps://127.0.0.1:<port>` when started with `tls`."""
        if not self._tls:
            raise RuntimeError("this slapd was made without tls=")
        return f"ldaps://127.0.0.1:{self._ldaps_port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_dn(self) -> str:
        return self._base_dn

    @property
    def service_dn(self) -> str:
        """The account govnode binds as to search the directory."""
        return f"cn=govnode,ou=services,{self._base_dn}"

    @property
    def service_password(self) -> str:
        return self._service_password

    @property
    def root_dn(self) -> str:
        """The rootdn, which no ACL restricts: for tests that write entries."""
        return f"cn=admin,{self._base_dn}"

    @property
    def root_password(self) -> str:
        """Random per instance; only its SSHA hash is written to slapd.conf."""
        return self._root_password

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def log_path(self) -> Path:
        """slapd's stderr (`-d none`: start-up errors and little else)."""
        return self._workdir / "slapd.log"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def _config_path(self) -> Path:
        return self._workdir / "slapd.conf"

    @property
    def _db_dir(self) -> Path:
        return self._workdir / "db"

    def seed(
        self,
        agencies: Iterable[Agency],
        *,
        password_for: Callable[[str], str] = demo_password,
        users: Mapping[str, Sequence[str]] = {},
    ) -> None:
        """Replace the directory's content with the given agencies and users.

        Loads offline with slapadd, which is far faster than adding over LDAP,
        so it must run while slapd is stopped.
        """
        if self.is_running:
            raise RuntimeError("seed() loads the database offline: call it before start()")
        text = agencies_ldif(
            self._base_dn,
            agencies,
            password_for=password_for,
            service_dn=self.service_dn,
            service_password=self._service_password,
            users=users,
        )
        self._write_config()
        shutil.rmtree(self._db_dir)
        self._db_dir.mkdir()
        seed_path = self._workdir / "seed.ldif"
        seed_path.write_text(text, encoding="utf-8")
        command = [str(_find_slapadd(find_slapd())), "-f", str(self._config_path)]
        command += ["-l", str(seed_path)]
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_TOOL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SlapdError(f"slapadd did not finish within {_TOOL_TIMEOUT:.0f} s") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode("utf-8", "replace").strip()
            raise SlapdError(f"slapadd failed (exit {result.returncode}) on {seed_path}:\n{output}")

    def start(self, timeout: float = 15.0) -> None:
        """Run slapd and return once it answers an anonymous bind."""
        if self.is_running:
            raise RuntimeError(f"slapd is already running at {self.url}")
        self._write_config()
        slapd = find_slapd()
        self._log = self.log_path.open("ab")
        log_start = self._log.tell()
        # `-d none` keeps slapd in the foreground, our child, and still logs its
        # fatal errors to stderr; `-d 0` is silent even when start-up fails.
        urls = f"{self.url}/" + (f" {self.ldaps_url}/" if self._tls else "")
        command = [str(slapd), "-f", str(self._config_path), "-h", urls, "-d", "none"]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        # A forgotten instance must not outlive the test run.
        self._reaper = weakref.finalize(self, _terminate, self._process)
        try:
            self._wait_ready(timeout)
        except BaseException as exc:
            self.stop()
            output = self._read_log(log_start)
            if isinstance(exc, SlapdError):
                raise SlapdError(f"{exc}; slapd said:\n{output}") from None
            raise

    def stop(self) -> None:
        """Stop slapd if it runs; safe to call twice."""
        if self._reaper is not None:
            self._reaper()  # runs _terminate once, then detaches
            self._reaper = None
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, timeout: float = 15.0) -> None:
        self.stop()
        self.start(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<Slapd {self.url} {self._base_dn} {state}>"

    def _wait_ready(self, timeout: float) -> None:
        """Poll with anonymous binds until slapd answers, it dies, or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise SlapdError(f"slapd exited with status {code} while starting at {self.url}")
            # A fresh Server each time: ldap3 marks a refused address unusable for a while.
            server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=1)
            try:
                connection = ldap3.Connection(server, receive_timeout=1)
                try:
                    if connection.bind():
                        return
                finally:
                    connection.unbind()
            except LDAPException:
                pass
            if time.monotonic() >= deadline:
                raise SlapdError(f"slapd did not answer at {self.url} within {timeout:.1f} s")
            time.sleep(0.05)

    def _read_log(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace").strip() or "(no output)"
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"

    def _write_config(self) -> None:
        """slapd.conf for this instance; written on every seed and start (cheap, idempotent)."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._db_dir.mkdir(exist_ok=True)
        schema_dir = _schema_dir()
        lines = [
            "# Generated by govnode.testing.slapd; rewritten on every start.",
            *(f"include {_quote(schema_dir / f'{name}.schema')}" for name in _BASE_SCHEMAS),
            *(f"include {_quote(path)}" for path in self._extra_schema),
            f"pidfile {_quote(self._workdir / 'slapd.pid')}",
            f"argsfile {_quote(self._workdir / 'slapd.args')}",
        ]
        module_dir = _module_dir()
        if module_dir is not None:
            lines += [f"modulepath {_quote(module_dir)}", "moduleload back_mdb"]
        if self._tls:
            certificate, key = self._tls
            lines += [
                f"TLSCertificateFile {_quote(certificate.resolve())}",
                f"TLSCertificateKeyFile {_quote(key.resolve())}",
            ]
        lines += [
            "",
            "database mdb",
            f"maxsize {_MAXSIZE}",
            f"suffix {_quote(self._base_dn)}",
            f"rootdn {_quote(self.root_dn)}",
            f"rootpw {_quote(ssha(self._root_password))}",
            f"directory {_quote(self._db_dir)}",
            "index objectClass eq",
            "index uid eq",
            # The service account syncs whole directories (paged); no 500-entry cap.
            f"limits dn.exact={_quote(self.service_dn)} size=unlimited",
            "",
            # Passwords: only for binding, and for their owner to change.
            "access to attrs=userPassword",
            "  by self write",
            "  by anonymous auth",
            "  by * none",
            # Everything else: the service account and bound agencies read, anonymous sees nothing.
            "access to *",
            f"  by dn.exact={_quote(self.service_dn)} read",
            "  by users read",
            "  by * none",
            "",
        ]
        self._config_path.write_text("\n".join(lines), encoding="utf-8")
