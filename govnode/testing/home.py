"""Throwaway node homes: `govnode init` against a private slapd, agencies enrolled."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from govnode.cli.commands import peer_material
from govnode.cli.main import main as govnode
from govnode.config import CONFIG_NAME, Config, load_config
from govnode.directory.ldap import LdapDirectory
from govnode.pki.authority import NodeAuthority
from govnode.pki.files import write_atomic, write_private
from govnode.store import directory
from govnode.store.database import Database
from govnode.testing.databases import fresh_database_url, testing_postgres
from govnode.testing.slapd import Slapd


@dataclass(frozen=True, slots=True)
class ClientFiles:
    """What an enrolled agency holds: its certificate, its key, and the node's CA."""

    cert: Path
    key: Path
    ca: Path


def init_home(
    home: Path,
    slapd: Slapd,
    *,
    node_id: str = "kb",
    name: str = "استانداری کهگیلویه و بویراحمد",
    api_port: int = 0,
    admin_port: int = 0,
    database_url: str | None = None,
) -> Config:
    """Run `govnode init` for a node whose directory is `slapd`; its database is
    `database_url`, or a fresh one (`fresh_database_url`: the home's SQLite file,
    or a new PostgreSQL database in the PostgreSQL test run)."""
    if database_url is None and testing_postgres():
        database_url = fresh_database_url(home.parent, f"{home.name}-{node_id}")
    database = ["--database-url", database_url] if database_url is not None else []
    password_file = home.parent / f".{home.name}-ldap-password"
    write_private(password_file, slapd.service_password.encode("utf-8"))
    with contextlib.redirect_stdout(io.StringIO()):  # init's next steps are for humans
        code = govnode(
            [
                "--home",
                str(home),
                "init",
                "--node",
                node_id,
                "--name",
                name,
                "--api-listen",
                f"127.0.0.1:{api_port}",
                "--admin-listen",
                f"127.0.0.1:{admin_port}",
                "--ldap-url",
                slapd.url,
                "--ldap-base-dn",
                slapd.base_dn,
                "--ldap-bind-dn",
                slapd.service_dn,
                "--ldap-password-file",
                str(password_file),
                *database,
            ]
        )
    password_file.unlink()
    if code != 0:
        raise RuntimeError(f"govnode init failed for {home} (exit {code})")
    return load_config(home / CONFIG_NAME)


_SETTING = r"(?m)^({key}\s*=\s*).*$"


def configure(home: Path, **settings: str | list[str] | float) -> Config:
    """Change top-level keys of an existing `govnode.toml` (demo and test use only).

    Keys are unique names in our template (`api`, `admin`, `urls`,
    `reload_interval`...), so a line edit keeps the operator's comments intact.
    """
    path = home / CONFIG_NAME
    text = path.read_text(encoding="utf-8")
    for key, value in settings.items():
        literal = json.dumps(value, ensure_ascii=False)
        text, count = re.subn(
            _SETTING.format(key=re.escape(key)),
            lambda match: match.group(1) + literal,  # noqa: B023 - used at once
            text,
            count=1,
        )
        if count != 1:
            raise KeyError(f"{path}: no setting {key!r} to change")
    write_atomic(path, text.encode("utf-8"), mode=0o640)
    return load_config(path)


def sync_directory(config: Config) -> int:
    db = Database(config.database.url)
    try:
        entries = LdapDirectory(config.ldap).fetch_agencies_sync()
        kept, _ = db.run_sync(directory.thd_replace_all, entries, now=datetime.now(UTC).timestamp())
        return kept
    finally:
        db.stop()


def enroll(config: Config, codes: Iterable[str], out_root: Path) -> dict[str, ClientFiles]:
    """Issue certificates for `codes` into `out_root/<code>/` (what `agency enroll` writes)."""
    db = Database(config.database.url)
    authority = NodeAuthority(config.tls, config.node.id, db)
    ca_pem = config.tls.ca_cert.read_bytes()
    issued: dict[str, ClientFiles] = {}
    try:
        for code in codes:
            certificate = authority.enroll(code, now=datetime.now(UTC))
            folder = out_root / code
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            files = ClientFiles(folder / "cert.pem", folder / "key.pem", folder / "ca.pem")
            write_atomic(files.cert, certificate.cert_pem)
            write_private(files.key, certificate.key_pem)
            write_atomic(files.ca, ca_pem)
            issued[code] = files
    finally:
        db.stop()
    return issued


def add_peer(home: Path, other: Config, url: str) -> None:
    """Make `other` a peer of `home` (what `govnode peer export` gives), once; a
    later call only moves its URL."""
    config_path = home / CONFIG_NAME
    text = config_path.read_text(encoding="utf-8")
    entry = re.search(rf'(?m)^\[\[peers\]\]\nid = "{other.node.id}"\nurl = "[^"]*"', text)
    if entry is not None:  # an earlier run
        moved = re.sub(r'url = "[^"]*"', f'url = "{url}"', entry.group(0))
        config_path.write_text(text.replace(entry.group(0), moved), encoding="utf-8")
        return
    files, lines = peer_material(other, url)
    (home / "peers").mkdir(exist_ok=True)
    for name, content in files.items():
        write_atomic(home / "peers" / name, content)
    config_path.write_text(f"{text}\n{lines}\n", encoding="utf-8")


def set_line(home: Path, line: str) -> None:
    """Set a `key = value` line of govnode.toml as written (`routes = { kb = "kb" }`)."""
    config_path = home / CONFIG_NAME
    key = line.split("=", 1)[0].strip()
    text, count = re.subn(
        rf"(?m)^{re.escape(key)} = .*$", line, config_path.read_text(encoding="utf-8"), count=1
    )
    if count != 1:
        raise KeyError(f"{config_path}: no setting {key!r} to change")
    config_path.write_text(text, encoding="utf-8")


def free_port() -> int:
    """A loopback port free now, for a listener that must keep its port across restarts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # a date: a TOML local date
        return str(value.isoformat())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"no TOML for {value!r}")


def _toml_tables(prefix: str, table: Mapping[str, object]) -> list[str]:
    lines = [f"[{prefix}]"]
    inner = []
    for key, value in table.items():
        name = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)
        if isinstance(value, Mapping):
            inner.append((f"{prefix}.{name}", value))
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    for inner_prefix, inner_table in inner:
        lines.extend(["", *_toml_tables(inner_prefix, inner_table)])
    return lines


def enable_plugins(home: Path, plugins: Mapping[str, Mapping[str, object]]) -> Config:
    """Enable `plugins` (name → its `[plugins.<name>]` settings) in a home's config.

    For plugin tests: `enable_plugins(home, {"rollout": {"phases": {"3": "1405/01/01"}}})`.
    Replaces the plugins enabled before and their settings sections.
    """
    path = home / CONFIG_NAME
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^\[plugins\.[^\]]+\].*?(?=^\[(?!plugins\.)|\Z)", "", text)
    text, count = re.subn(
        r"(?m)^enabled = .*$", f"enabled = {_toml_value(list(plugins))}", text, count=1
    )
    if count != 1:
        raise KeyError(f"{path}: no plugins.enabled line")
    sections = ["\n".join(_toml_tables(f"plugins.{name}", s)) for name, s in plugins.items() if s]
    write_atomic(
        path, (text.rstrip("\n") + "\n\n" + "\n\n".join(sections) + "\n").encode(), mode=0o640
    )
    return load_config(path)
