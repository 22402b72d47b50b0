"""A wrong `govnode.toml`: one line naming the file and the key, exit 2, never a traceback."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from govnode.config import CONFIG_NAME
from tests.cli.support import Govnode, run_process

Edit = Callable[[str], str]


def replace_line(key: str, line: str) -> Edit:
    """Replace the line that sets `key` (keys are unique in the template)."""

    def edit(text: str) -> str:
        edited, count = re.subn(rf"(?m)^{re.escape(key)}\s*=.*$", line, text, count=1)
        assert count == 1, key
        return edited

    return edit


def insert_after(header: str, line: str) -> Edit:
    def edit(text: str) -> str:
        assert f"\n{header}\n" in text
        return text.replace(f"\n{header}\n", f"\n{header}\n{line}\n", 1)

    return edit


# (edit, what the message must name besides the file)
CASES: dict[str, tuple[Edit, list[str]]] = {
    "syntax": (lambda text: text.replace("[listen]", "[listen", 1), ["not valid TOML", "line"]),
    "unknown-key": (
        insert_after("[ldap]", 'urlz = ["ldap://127.0.0.1"]'),
        ["ldap.urlz", "not a known setting"],
    ),
    "unknown-section": (lambda text: text + "\n[ldapp]\n", ["ldapp", "not a known setting"]),
    "wrong-type": (replace_line("api", "api = 8443"), ["listen.api", "8443"]),
    "not-an-ldap-url": (
        replace_line("urls", 'urls = ["ldap://127.0.0.1:1", "http://x"]'),
        ["ldap.urls[1]", "ldap://", "'http://x'"],
    ),
    "missing-password-file": (
        replace_line("bind_password_file", 'bind_password_file = "secrets/gone"'),
        ["ldap.bind_password_file", "secrets/gone"],
    ),
    "out-of-range": (
        replace_line("agency_cert_days", "agency_cert_days = 0"),
        ["tls.agency_cert_days", "between 1 and 3650"],
    ),
    "bad-node-id": (replace_line("id", 'id = "KB"'), ["node.id", "'KB'"]),
    "bad-database-url": (
        replace_line("url", 'url = "mysql://db/govnode"'),
        ["database.url", "sqlite:///"],
    ),
}


def break_config(home: Path, edit: Edit) -> Path:
    path = home / CONFIG_NAME
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def assert_one_clear_line(err: str, path: Path, named: list[str]) -> None:
    assert err.startswith(f"govnode: {path}"), err
    assert err.count("\n") == 1, f"one message, not {err!r}"
    for fragment in named:
        assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", list(CASES))
def test_check_names_the_file_and_the_key(govnode: Govnode, case: str) -> None:
    edit, named = CASES[case]
    path = break_config(govnode.home, edit)
    result = govnode("check")
    assert result.code == 2
    assert result.out == ""
    assert_one_clear_line(result.err, path, named)


@pytest.mark.parametrize(
    "argv",
    [
        ("agency", "list"),
        ("agency", "list", "--json"),
        ("agency", "enroll", "edu", "--out", "OUT"),
        ("agency", "revoke", "edu"),
        ("directory", "sync"),
        ("db", "upgrade"),
    ],
    ids=" ".join,
)
def test_every_command_refuses_a_wrong_config_the_same_way(
    govnode: Govnode, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    path = break_config(govnode.home, replace_line("urls", 'urls = ["http://x"]'))
    out = tmp_path / "out"
    result = govnode(*(str(out) if arg == "OUT" else arg for arg in argv))
    assert result.code == 2
    assert result.out == ""
    assert_one_clear_line(result.err, path, ["ldap.urls[0]"])
    assert not out.exists()


def test_the_installed_command_exits_2_without_a_traceback(govnode: Govnode) -> None:
    """The same through a real process, as systemd and the shell see it."""
    edit, named = CASES["wrong-type"]
    path = break_config(govnode.home, edit)
    for argv in (("check",), ("serve",)):
        result = run_process(govnode.home, *argv)
        assert result.returncode == 2, argv
        assert result.stdout == ""
        assert_one_clear_line(result.stderr, path, named)
