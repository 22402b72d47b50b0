"""The daemon's log: one JSON object per line for journald and log shippers, or
Twisted's text lines on a terminal (`[log] format`, `[log] level`).

A JSON line holds `time` (RFC 3339, UTC), `level`, `namespace`, `message` (the
formatted text) and the event's own fields (`letter_id`, `agency`, `peer`,
...), so a log shipper can search by letter or agency without parsing text.

What must never reach a log, whatever a call site passes: letter bodies and
subjects (official letters may be confidential), passwords, tokens and
attachment data. Such fields are replaced by `[redacted]` before the message is
formatted, so a format string that names one prints the placeholder too.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from zope.interface import provider

from govnode.config.model import LOG_LEVELS, LogSection

REDACTED = "[redacted]"

SECRET_FIELDS = frozenset(
    {
        "body",
        "subject",
        "password",
        "bind_password",
        "passphrase",
        "token",
        "bearer",
        "authorization",
        "data",
    }
)
"""Event fields never written: the content of letters and anything that logs in."""

LEVELS = LOG_LEVELS

# Keys of legacy `twisted.python.log` events that are not fields of ours.
_LEGACY = frozenset({"message", "isError", "system", "format", "why", "failure", "time"})

_threshold = LEVELS.index("info")


def enabled(level: LogLevel) -> bool:
    """Whether events of `level` are written: per-letter events are built only then
    (at thousands of letters a second, an event thrown away still costs)."""
    return LEVELS.index(level.name) >= _threshold


def _redacted(event: LogEvent) -> LogEvent:
    if SECRET_FIELDS.isdisjoint(event):
        return event
    return {key: REDACTED if key in SECRET_FIELDS else value for key, value in event.items()}


def _field(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_field(item) for item in value]
    return str(value)


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def json_line(event: LogEvent) -> str:
    """One event as one line of JSON (no newline inside: `ensure_ascii=False` keeps
    Persian names readable, and JSON escapes the line breaks of a traceback)."""
    event = _redacted(event)
    level = event.get("log_level")
    line: dict[str, Any] = {
        "time": _rfc3339(event.get("log_time", 0.0)),
        "level": getattr(level, "name", "info"),
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY or key in line:
            continue
        line[key] = _field(value)
    failure = event.get("log_failure")
    if failure is not None:
        line["error"] = f"{failure.type.__name__}: {failure.getErrorMessage()}"
        line["traceback"] = failure.getTraceback()
    return json.dumps(line, ensure_ascii=False, default=str)


def json_observer(stream: IO[str]) -> ILogObserver:
    def observe(event: LogEvent) -> None:
        stream.write(json_line(event) + "\n")
        stream.flush()

    observer: ILogObserver = provider(ILogObserver)(observe)
    return observer


def text_observer(stream: IO[str]) -> ILogObserver:
    """Twisted's text lines, with the same redaction as the JSON ones."""
    text = textFileLogObserver(stream)

    def observe(event: LogEvent) -> None:
        text(_redacted(event))

    observer: ILogObserver = provider(ILogObserver)(observe)
    return observer


def uses_json(section: LogSection, stream: IO[str]) -> bool:
    """`auto`: JSON unless a person watches the terminal (systemd and supervisord
    give the daemon a pipe or a file)."""
    if section.format == "auto":
        return not stream.isatty()
    return section.format == "json"


def observer(section: LogSection, stream: IO[str] | None = None) -> ILogObserver:
    """The daemon's observer as `[log]` asks; also sets what `enabled` answers."""
    global _threshold
    stream = stream if stream is not None else sys.stderr
    _threshold = LEVELS.index(section.level)
    chosen = json_observer(stream) if uses_json(section, stream) else text_observer(stream)
    level = LogLevel.levelWithName(section.level)
    return FilteringLogObserver(chosen, [LogLevelFilterPredicate(level)])
