"""`manifest.json`, the archive's first member: what the backup holds and each member's sum.

Members are `home/...` (config, pki, secrets, peers), `data/attachments/...`
(the attachment files the database snapshot references) and `database/...`
(the SQLite snapshot or the `pg_dump` file). The manifest comes first so a
restore knows at once what it reads, checks each member as it streams past,
and notices a member that never came.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from govnode.ops.errors import BackupError

FORMAT = "govnode-backup"
VERSION = 1
NAME = "manifest.json"
SQLITE_MEMBER = "database/govnode.db"
POSTGRES_MEMBER = "database/govnode.pgdump"


@dataclass(frozen=True, slots=True)
class Member:
    path: str
    kind: str  # "file" or "dir"
    mode: int
    size: int = 0
    sha256: str = ""


@dataclass(frozen=True, slots=True)
class Manifest:
    node_id: str
    govnode_version: str
    created_at: str
    database: str  # "sqlite" or "postgresql"
    schema_revision: str | None
    data_dir: str  # the config's data_dir as written, for the restore's summary
    members: tuple[Member, ...]

    def to_json(self) -> bytes:
        document: dict[str, Any] = {"format": FORMAT, "version": VERSION, **asdict(self)}
        return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise BackupError("not a govnode backup (its manifest is not JSON)") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise BackupError("not a govnode backup (its manifest names no govnode format)")
        if document.get("version") != VERSION:
            raise BackupError(
                f"backup format version {document.get('version')!r}; "
                f"this govnode reads version {VERSION}"
            )
        try:
            members = tuple(Member(**member) for member in document["members"])
            return cls(
                node_id=str(document["node_id"]),
                govnode_version=str(document["govnode_version"]),
                created_at=str(document["created_at"]),
                database=str(document["database"]),
                schema_revision=document["schema_revision"],
                data_dir=str(document["data_dir"]),
                members=members,
            )
        except (KeyError, TypeError) as exc:
            raise BackupError(f"the backup's manifest is damaged ({exc})") from None
