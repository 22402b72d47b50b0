"""What a plugin developer imports: the hook marker, the facade, values and errors.

    from govnode.hooks import hookimpl, NodeApi, LetterRefused

Hooks are specified in `govnode.hooks.specs` (project `govnode`, entry-point
group `govnode.plugins`); `docs/plugins.md` is the guide.
"""

from govnode.domain.calendar import BadDate, day_start, jalali_day, jalali_text, parse_day, rfc3339
from govnode.domain.plugins import (
    LETTER_EVENTS,
    Caller,
    DirectoryEntry,
    Draft,
    DraftAttachment,
    Enrollment,
    LetterEvent,
    LetterPage,
    LetterQuery,
    LetterRecord,
    PluginInfo,
    PluginRequest,
    RecipientRecord,
    Registered,
    Reply,
    Route,
    StatusReport,
)
from govnode.hooks.actor import operator
from govnode.hooks.api import NodeApi, PluginStore
from govnode.hooks.csr import check_csr
from govnode.hooks.errors import (
    CommandError,
    EnrollmentRefused,
    LetterRefused,
    PluginError,
    Refused,
)
from govnode.hooks.markers import ENTRY_POINT_GROUP, PROJECT, hookimpl, hookspec
from govnode.hooks.settings import PluginSettings

__all__ = [
    "ENTRY_POINT_GROUP",
    "LETTER_EVENTS",
    "PROJECT",
    "BadDate",
    "Caller",
    "CommandError",
    "DirectoryEntry",
    "Draft",
    "DraftAttachment",
    "Enrollment",
    "EnrollmentRefused",
    "LetterEvent",
    "LetterPage",
    "LetterQuery",
    "LetterRecord",
    "LetterRefused",
    "NodeApi",
    "PluginError",
    "PluginInfo",
    "PluginRequest",
    "PluginSettings",
    "PluginStore",
    "RecipientRecord",
    "Refused",
    "Registered",
    "Reply",
    "Route",
    "StatusReport",
    "check_csr",
    "day_start",
    "hookimpl",
    "hookspec",
    "jalali_day",
    "jalali_text",
    "operator",
    "parse_day",
    "rfc3339",
]
