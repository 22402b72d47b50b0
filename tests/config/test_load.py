"""Reading govnode.toml: defaults, paths, secrets, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from govnode.config import ConfigError, load_config
from govnode.config.template import InitValues, render_config

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "govnode.toml"


def write_home(tmp_path: Path, text: str | None = None) -> Path:
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "ldap-bind-password").write_text("s3cret\n")
    path = tmp_path / "govnode.toml"
    path.write_text(text if text is not None else render_config(InitValues()), encoding="utf-8")
    return path


def test_the_shipped_example_is_what_init_writes() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == render_config(InitValues())


def test_defaults_paths_and_secrets(tmp_path: Path) -> None:
    config = load_config(write_home(tmp_path))
    assert config.node.id == "kb"
    assert config.listen.api.port == 8443
    assert config.tls.ca_cert == tmp_path / "pki" / "ca.pem"
    assert config.database.url == f"sqlite:///{tmp_path / 'data' / 'govnode.db'}"
    assert config.ldap.bind_password == "s3cret"
    assert config.ldap.agencies_dn == "ou=agencies,dc=kb,dc=gov,dc=ir"
    assert config.ldap.attributes.name_fa == "o"
    assert config.limits.lockout_failures == 5
    assert config.limits.token_ttl == 8 * 3600
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('id = "kb"', 'id = "KB!"', "node.id"),
        ('api = "127.0.0.1:8443"', "api = 8443", "listen.api"),
        ('api = "127.0.0.1:8443"', 'api = "127.0.0.1:99999"', "listen.api"),
        ('urls = ["ldaps://ldap.example.gov.ir"]', 'urls = ["http://x"]', "ldap.urls[0]"),
        ("connect_timeout = 5.0", "connect_timeout = true", "ldap.connect_timeout"),
        ("lockout_failures = 5", "lockout_failures = 0", "limits.lockout_failures"),
        ('code = "uid"', 'code = ""', "ldap.attributes.code"),
        ("start_tls = false", "start_tls = false\nstarttls = true", "ldap.starttls"),
        ('url = "sqlite:///data/govnode.db"', 'url = "mysql://x"', "database.url"),
        ("[plugins]", "[plugin]", "plugin"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    text = render_config(InitValues())
    assert old in text
    path = write_home(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_a_misspelled_required_key_is_named(tmp_path: Path) -> None:
    text = render_config(InitValues()).replace("urls = [", "urlz = [", 1)
    with pytest.raises(
        ConfigError, match=r"ldap\.urlz: is not a known setting; did you mean 'urls'"
    ):
        load_config(write_home(tmp_path, text))


def test_missing_secret_file_names_the_key(tmp_path: Path) -> None:
    path = write_home(tmp_path)
    (tmp_path / "secrets" / "ldap-bind-password").unlink()
    with pytest.raises(ConfigError, match=r"ldap\.bind_password_file: cannot read"):
        load_config(path)


@pytest.mark.parametrize(
    ("content", "problem"), [(b"[node\n", "not valid TOML"), (b"\xff\xfe", "not UTF-8")]
)
def test_unreadable_files_are_named(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "govnode.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=problem):
        load_config(path)


def test_attachments_live_in_the_data_dir_unless_configured(tmp_path: Path) -> None:
    default = load_config(write_home(tmp_path))
    assert default.node.attachments == tmp_path / "data" / "attachments"
    text = render_config(InitValues()).replace(
        '# attachments_dir = "data/attachments"', 'attachments_dir = "/srv/govnode/attachments"'
    )
    shared = load_config(write_home(tmp_path, text))
    assert shared.node.attachments == Path("/srv/govnode/attachments")
    relative = text.replace("/srv/govnode/attachments", "../shared")
    assert load_config(write_home(tmp_path, relative)).node.attachments == tmp_path / "../shared"
    with pytest.raises(ConfigError, match=r"node\.attachments_dir"):
        load_config(write_home(tmp_path, text.replace('"/srv/govnode/attachments"', "7")))
