"""The demo province's data (`etc/demo/*.csv`), read into domain values."""

from __future__ import annotations

import csv
from pathlib import Path

from govnode.domain.agency import Agency

DEMO_DIR = Path(__file__).resolve().parents[2] / "etc" / "demo"


def demo_file(name: str) -> Path:
    """A file of the shipped demo data; an installed package looks beside the checkout."""
    path = DEMO_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: demo data not found (run from a govnode checkout)")
    return path


def load_agencies(path: Path) -> list[Agency]:
    """Read an agencies CSV (`code,name_fa,name_en,kind,phase,parent,county`)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Agency(
                code=row["code"],
                name_fa=row["name_fa"],
                name_en=row["name_en"],
                kind=row["kind"],
                phase=int(row["phase"]),
                parent=row["parent"] or None,
                county=row["county"] or None,
            )
            for row in csv.DictReader(handle)
        ]


def demo_password(username: str) -> str:
    """The demo-only password of an account: `demo-<username>`."""
    return f"demo-{username}"
