"""Where a running node answers: `data_dir/serve.json`, written once it is ready.

The config may say port 0 (any free port) and `govnode status` must still find
the live admin listener; the pid tells a file left by a crash from a live node.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from govnode.pki.files import write_atomic

RUNTIME_NAME = "serve.json"


def write_running(data_dir: Path, *, node_id: str, api_url: str, admin_url: str) -> None:
    document = {"node": node_id, "pid": os.getpid(), "api": api_url, "admin": admin_url}
    write_atomic(data_dir / RUNTIME_NAME, json.dumps(document).encode("utf-8"), mode=0o644)


def read_running(data_dir: Path) -> dict[str, Any] | None:
    """What the running node wrote, or None when no live process wrote it."""
    try:
        document = json.loads((data_dir / RUNTIME_NAME).read_text(encoding="utf-8"))
        pid = int(document["pid"])
        os.kill(pid, 0)
    except PermissionError:  # alive, run by another user (the daemon's own)
        return dict(document)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(document)
