"""How the CLI prints rows: aligned columns for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence


def print_json(rows: object) -> None:
    json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
    print()


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last (free text) is left as it is."""
    columns = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:columns], widths, strict=True))
        + ("  " + row[columns] if row[columns] else "")
        for row in rows
    )
