"""CLI errors: a message for the sysadmin and an exit code, never a traceback."""

from __future__ import annotations

EXIT_PROBLEM = 1  # the command ran and found a problem (check failed, LDAP down...)
EXIT_USAGE = 2  # the command cannot run as asked (bad config, bad argument)


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code
