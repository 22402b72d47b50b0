"""The one error the backup and restore code raises: a line for the sysadmin."""

from __future__ import annotations


class BackupError(Exception):
    """A backup or restore cannot go on; the message names the file or member at fault."""
