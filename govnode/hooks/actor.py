"""Who runs an operator command, as the audit log names them."""

from __future__ import annotations

import os
import pwd


def operator() -> str:
    """`operator:<user>`: the account of the process's user id (not $USER, which anyone
    can set), and who ran sudo when root did it through sudo."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    sudo_user = os.environ.get("SUDO_USER")
    if uid == 0 and sudo_user and sudo_user != name:
        name = f"{name} (sudo by {sudo_user})"
    return f"operator:{name}"
