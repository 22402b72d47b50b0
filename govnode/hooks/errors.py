"""What plugins raise to refuse, and what the node raises when a plugin cannot be used."""

from __future__ import annotations


class PluginError(Exception):
    """A plugin is not installed, does not load, or breaks its contract; start-up stops."""


class Refused(Exception):
    """A plugin says no; the client sees `status`, `code` and `message` in the API's
    error shape (and `field` when one field is at fault)."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if not 400 <= status <= 499:
            raise ValueError(f"a refusal is a 4xx answer, not {status}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class LetterRefused(Refused):
    """`govnode_letter_policy` refuses a letter: nothing is stored; 403 unless given."""

    def __init__(
        self, code: str, message: str, *, status: int = 403, field: str | None = None
    ) -> None:
        super().__init__(status, code, message, field=field)


class EnrollmentRefused(Exception):
    """`govnode_agency_enrollment` refuses to enroll an agency, with the reason shown."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CommandError(Exception):
    """A plugin's CLI command fails: `govnode: <message>`, exit code `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
