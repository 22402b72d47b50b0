"""The worked directory search cases of shared/data (copied to etc/demo)."""

from __future__ import annotations

import csv

from govnode.testing.demo_data import demo_file


def search_cases() -> list[tuple[str, frozenset[str], str]]:
    """(query, expected codes, note); `\\u0000` in the file stands for NUL."""
    with demo_file("search-cases.csv").open(encoding="utf-8", newline="") as handle:
        return [
            (
                row["query"].replace("\\u0000", "\x00"),
                frozenset(code for code in row["expected_codes"].split(";") if code),
                row["note"],
            )
            for row in csv.DictReader(handle)
        ]
