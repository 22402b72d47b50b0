"""What the hook tests share: the probe's record of calls, waiting on it, metrics, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from govnode.hooks import specs
from govnode.testing.client import AgencyClient, Response

HOOKS = sorted(name for name in vars(specs) if name.startswith("govnode_"))
"""Every hook govnode specifies: the probe implements them all."""

DEADLINE = 5.0  # seconds: "shortly after the commit (within about a second)", with room

Call = dict[str, Any]


class Record:
    """The calls the probe wrote (one JSON object a line, from every process)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def calls(self, hook: str | None = None, **facts: Any) -> list[Call]:
        """The calls so far, oldest first: of `hook`, with these values, when given."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        found = [json.loads(line) for line in lines if line]
        return [
            call
            for call in found
            if (hook is None or call["hook"] == hook)
            and all(call.get(key) == value for key, value in facts.items())
        ]

    def wait(
        self,
        until: Callable[[list[Call]], bool],
        hook: str | None = None,
        *,
        deadline: float = DEADLINE,
        **facts: Any,
    ) -> list[Call]:
        """The calls of `hook` (with `facts`) once `until(calls)` holds; fails at the deadline."""
        end = time.monotonic() + deadline
        while True:
            calls = self.calls(hook, **facts)
            if until(calls):
                return calls
            if time.monotonic() > end:
                raise AssertionError(
                    f"after {deadline} s the probe's {hook or 'calls'} {facts} are still {calls}"
                )
            time.sleep(0.05)


def unique(word: str) -> str:
    """A subject no other test uses: `word` and a random tag."""
    return f"{word} {uuid.uuid4().hex[:12]}"


def logged_in(client: AgencyClient, username: str) -> AgencyClient:
    response = client.login(username, f"demo-{username}")
    assert response.status == 200, response.body
    return client


def submit(client: AgencyClient, **fields: Any) -> Response:
    document: dict[str, Any] = {"to": ["welfare"], "subject": unique("letter"), "body": "متن"}
    document.update(fields)
    return client.request("POST", "/api/v1/letters", json_body=document)


def mailbox_subjects(client: AgencyClient, box: str) -> list[str]:
    """Subjects in the caller's `inbox` or `outbox` (the newest 500)."""
    response = client.request("GET", f"/api/v1/{box}", query={"limit": "500"})
    assert response.status == 200, response.body
    return [letter["subject"] for letter in response.json()["letters"]]


def sequence(number: str) -> int:
    """The running part of a registration number (`KB-1405-000123` → 123)."""
    return int(number.rsplit("-", 1)[1])


def metric(admin_url: str, name: str, **labels: str) -> float:
    """A sample of the node's /metrics (0 when it has not been counted yet)."""
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=10) as answer:
        text = answer.read().decode("utf-8")
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def hook_errors(admin_url: str, hook: str) -> float:
    return metric(admin_url, "govnode_plugin_hook_errors_total", plugin="probe", hook=hook)


def govnode(home: Path, *argv: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`govnode --home HOME ARGV...` as its own process, as the operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "govnode.cli.main", "--home", str(home), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
