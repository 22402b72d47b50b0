"""The daemon's log lines: JSON fields, what is never written, the format and level chosen."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.logger import ILogObserver, Logger, LogLevel, LogPublisher

from govnode import logs
from govnode.config import ConfigError, load_config
from govnode.config.model import LogSection
from govnode.config.template import InitValues, render_config


def emit(observer: ILogObserver, level: LogLevel, text: str, **fields: object) -> None:
    publisher = LogPublisher(observer)
    Logger(namespace="govnode.test", observer=publisher).emit(level, text, **fields)


@pytest.fixture(autouse=True)
def info_again() -> Iterator[None]:
    yield
    logs.observer(LogSection(), io.StringIO())  # the threshold is the process's


def test_a_json_line_has_the_time_level_message_and_the_fields() -> None:
    out = io.StringIO()
    observer = logs.observer(LogSection(format="json"), out)
    emit(observer, LogLevel.warn, "letter {letter_id} to {peer}", letter_id="01ABC", peer="center")
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["message"] == "letter 01ABC to center"
    assert (event["level"], event["namespace"]) == ("warn", "govnode.test")
    assert (event["letter_id"], event["peer"]) == ("01ABC", "center")
    assert event["time"].endswith("Z")
    assert len(event["time"]) == len("2026-11-25T03:50:23.260Z")


def test_bodies_subjects_passwords_and_tokens_never_reach_the_log() -> None:
    secrets = {
        "body": "BODY-SECRET",
        "subject": "SUBJECT-SECRET",
        "password": "PASSWORD-SECRET",
        "token": "TOKEN-SECRET",
    }
    for format_ in ("json", "text"):
        out = io.StringIO()
        observer = logs.observer(LogSection(format=format_), out)
        emit(observer, LogLevel.info, "asked with {body} {subject} {password} {token}", **secrets)
        written = out.getvalue()
        assert written.count(logs.REDACTED) >= 4, written
        assert not any(secret in written for secret in secrets.values()), written


def test_a_failure_carries_its_error_and_traceback_in_one_line() -> None:
    out = io.StringIO()
    observer = logs.observer(LogSection(format="json"), out)
    publisher = LogPublisher(observer)
    try:
        raise RuntimeError("the disk is full")
    except RuntimeError:
        Logger(namespace="govnode.test", observer=publisher).failure("delivery run failed")
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["level"] == "critical"
    assert event["error"] == "RuntimeError: the disk is full"
    assert "Traceback" in event["traceback"]


def test_auto_is_json_for_a_pipe_or_file_and_text_on_a_terminal() -> None:
    assert logs.uses_json(LogSection(format="auto"), io.StringIO())
    primary, secondary = os.openpty()
    with os.fdopen(secondary, "w") as terminal:
        assert not logs.uses_json(LogSection(format="auto"), terminal)
        assert logs.uses_json(LogSection(format="json"), terminal)
    os.close(primary)
    assert not logs.uses_json(LogSection(format="text"), io.StringIO())


def test_the_level_filters_and_says_whether_per_letter_events_are_wanted() -> None:
    out = io.StringIO()
    observer = logs.observer(LogSection(format="json", level="info"), out)
    assert not logs.enabled(LogLevel.debug)
    emit(observer, LogLevel.debug, "letter {letter_id} delivered", letter_id="01ABC")
    assert out.getvalue() == ""
    observer = logs.observer(LogSection(format="json", level="debug"), out)
    assert logs.enabled(LogLevel.debug)
    emit(observer, LogLevel.debug, "letter {letter_id} delivered", letter_id="01ABC")
    assert json.loads(out.getvalue())["letter_id"] == "01ABC"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('format = "xml"', r"log\.format: must be \"json\", \"text\" or \"auto\", not 'xml'"),
        ('level = "verbose"', r"log\.level: must be one of debug, info, warn, error, critical"),
    ],
)
def test_log_settings_are_checked_with_the_file_and_key(
    tmp_path: Path, line: str, problem: str
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ldap-bind-password").write_text("s3cret\n")
    text = render_config(InitValues())
    key = line.split(" = ")[0]
    default = {"format": 'format = "auto"', "level": 'level = "info"'}[key]
    assert default in text
    path = tmp_path / "govnode.toml"
    path.write_text(text.replace(default, line), encoding="utf-8")
    with pytest.raises(ConfigError, match=problem) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_the_defaults_are_auto_and_info(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ldap-bind-password").write_text("s3cret\n")
    path = tmp_path / "govnode.toml"
    path.write_text(render_config(InitValues()), encoding="utf-8")
    assert load_config(path).log == LogSection(format="auto", level="info")
