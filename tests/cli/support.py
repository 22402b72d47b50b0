"""Running `govnode` the way a sysadmin does, and reading back what it left on disk."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from govnode.cli.main import main
from govnode.config import CONFIG_NAME, Config, load_config
from govnode.domain.agency import Agency
from govnode.testing.demo_data import demo_file, load_agencies

DEMO_AGENCIES: list[Agency] = load_agencies(demo_file("agencies.csv"))
DEMO_BY_CODE: dict[str, Agency] = {agency.code: agency for agency in DEMO_AGENCIES}
NODE_NAME = "استانداری کهگیلویه و بویراحمد"


@dataclass(frozen=True)
class Run:
    """What the operator sees: the exit code and both output streams."""

    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> Run:
    """`govnode ARGV...` in this process; any exception would be a traceback, so none escapes."""
    capsys.readouterr()  # drop what fixtures printed
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return Run(code, captured.out, captured.err)


class Govnode:
    """`govnode --home HOME ...` for one node home."""

    def __init__(self, capsys: pytest.CaptureFixture[str], home: Path) -> None:
        self.capsys = capsys
        self.home = home

    def __call__(self, *argv: str | Path) -> Run:
        return run(self.capsys, "--home", self.home, *argv)

    @property
    def config(self) -> Config:
        return load_config(self.home / CONFIG_NAME)

    def agencies(self) -> dict[str, dict[str, Any]]:
        """`agency list --json`, by code."""
        listed = self("agency", "list", "--json")
        assert listed.code == 0, listed.err
        rows: list[dict[str, Any]] = json.loads(listed.out)
        return {row["code"]: row for row in rows}


def run_process(home: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`govnode --home HOME ARGV...` as its own process (the console script's entry point)."""
    return subprocess.run(
        [sys.executable, "-m", "govnode.cli.main", "--home", str(home), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root`, with its content and mode (to prove nothing changed)."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), mode(path))
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def crl(home: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((home / "pki" / "crl.pem").read_bytes())


def crl_serials(home: Path) -> set[int]:
    return {entry.serial_number for entry in crl(home)}


def crl_number(home: Path) -> int:
    number: int = crl(home).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return number


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0
