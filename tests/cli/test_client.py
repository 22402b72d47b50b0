"""`govnode client` against a running node, as an agency's clerk uses it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from govnode.cli.main import main
from govnode.testing.process import NodeProcess
from govnode.testing.pytest_plugin import NodeHome


def client(
    capsys: pytest.CaptureFixture[str], profile: Path, *argv: str | Path
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["client", "--profile", str(profile), *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def login(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, home: NodeHome, node: NodeProcess, code: str
) -> Path:
    profile = tmp_path / f"{code}.json"
    password = tmp_path / f"{code}.password"
    password.write_text(f"demo-{code}\n")
    files = home.clients[code]
    status, out, err = client(
        capsys,
        profile,
        "login",
        code,
        "--url",
        node.api_url,
        "--ca",
        files.ca,
        "--cert",
        files.cert,
        "--key",
        files.key,
        "--password-file",
        password,
    )
    assert status == 0, err
    assert f"logged in as {code} of {code}" in out
    assert profile.stat().st_mode & 0o077 == 0
    return profile


def test_send_receive_read_answer_and_track(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    govnode_home: NodeHome,
    govnode_node: NodeProcess,
) -> None:
    sender = login(capsys, tmp_path, govnode_home, govnode_node, "edu-dena")
    recipient = login(capsys, tmp_path, govnode_home, govnode_node, "edu")
    attachment = tmp_path / "آمار.csv"
    attachment.write_bytes("مدرسه,دانش‌آموز\n۱,۲\n".encode())
    status, out, err = client(
        capsys,
        sender,
        "send",
        "--to",
        "edu",
        "--subject",
        "آمار مدارس دنا",
        "--body",
        "پیوست",
        "--attach",
        attachment,
    )
    assert status == 0, err
    assert out.startswith("registered KB-")
    letter_id = out.split("id ")[1].split()[0]
    deadline = time.monotonic() + 10
    while True:
        status, out, _ = client(capsys, recipient, "--json", "inbox", "--unread")
        if any(item["id"] == letter_id for item in json.loads(out)["letters"]):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    saved = tmp_path / "saved"
    status, out, _ = client(capsys, recipient, "show", letter_id, "--save-attachments", saved)
    assert status == 0
    assert "آمار مدارس دنا" in out
    assert (saved / "آمار.csv").read_bytes() == attachment.read_bytes()
    assert client(capsys, recipient, "read", letter_id)[0] == 0
    assert (
        client(
            capsys,
            recipient,
            "send",
            "--to",
            "edu-dena",
            "--subject",
            "دریافت شد",
            "--reply-to",
            letter_id,
        )[0]
        == 0
    )
    status, out, _ = client(capsys, sender, "track", letter_id)
    assert [line.split()[2] for line in out.splitlines()] == [
        "queued",
        "delivered",
        "read",
        "answered",
    ]


def test_errors_are_one_clear_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    govnode_home: NodeHome,
    govnode_node: NodeProcess,
) -> None:
    profile = login(capsys, tmp_path, govnode_home, govnode_node, "roads")
    status, _, err = client(capsys, profile, "send", "--to", "nobody-here", "--subject", "x")
    assert status == 1
    assert "422 unknown_recipient (to[0])" in err
    status, _, err = client(capsys, tmp_path / "missing.json", "inbox")
    assert status == 2
    assert "no session" in err
