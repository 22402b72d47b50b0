"""`govnode init --data-dir`: state outside the home (/var/lib/govnode), the
layout the systemd unit expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from govnode.config import CONFIG_NAME, load_config
from govnode.store.database import make_engine
from govnode.store.migrate import current_revision, head_revision
from tests.cli.support import NODE_NAME, run, snapshot


def init_argv(home: Path, data_dir: Path | str) -> list[str | Path]:
    return ["--home", home, "init", "--node", "kb", "--name", NODE_NAME, "--data-dir", data_dir]


def test_init_puts_the_database_into_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, state = tmp_path / "etc" / "govnode", tmp_path / "var" / "lib" / "govnode"
    state.mkdir(parents=True)  # scripts/install makes it, empty

    result = run(capsys, *init_argv(home, state))

    assert result.code == 0, result.err
    config = load_config(home / CONFIG_NAME, read_secrets=False)
    assert config.node.data_dir == state
    assert config.database.url == f"sqlite:///{state / 'govnode.db'}"
    assert f'data_dir = "{state}"' in (home / CONFIG_NAME).read_text(encoding="utf-8")
    engine = make_engine(config.database.url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert not (home / "data").exists(), "no second, unused data folder in the home"
    assert sorted(path.name for path in home.iterdir()) == [CONFIG_NAME, "pki", "secrets"]


def test_a_relative_data_dir_is_inside_the_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "kb"
    assert run(capsys, *init_argv(home, "state")).code == 0
    config = load_config(home / CONFIG_NAME, read_secrets=False)
    assert config.node.data_dir == home / "state"
    assert (home / "state" / "govnode.db").is_file()


def test_init_refuses_a_data_dir_that_holds_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "govnode.db").write_bytes(b"another node's database")
    before = snapshot(state)

    result = run(capsys, *init_argv(tmp_path / "kb", state))

    assert result.code == 2
    assert result.err == (
        f"govnode: --data-dir: {state} already holds files; refusing to mix in a node\n"
    )
    assert snapshot(state) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state"], "no home, no staging"


def test_a_data_dir_that_cannot_be_made_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")

    result = run(capsys, *init_argv(tmp_path / "kb", tmp_path / "a-file" / "state"))

    assert result.code == 2
    assert result.err.startswith(f"govnode: cannot create {tmp_path / 'kb'}: ")
    assert str(tmp_path / "a-file" / "state") in result.err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file"]


def test_an_empty_data_dir_is_refused_with_its_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, *init_argv(tmp_path / "kb", " "))
    assert result.code == 2
    assert result.err == "govnode: --data-dir: give a folder, e.g. /var/lib/govnode\n"
    assert list(tmp_path.iterdir()) == []
