"""Configuration errors: each names the file and the key path at fault."""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """`govnode.toml` is missing, unreadable or wrong at one key."""

    def __init__(self, path: Path, key: str | None, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message
        where = f"{path}: {key}" if key else str(path)
        super().__init__(f"{where}: {message}")
