"""The [federation] section and [[peers]] tables: defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from govnode.config import ConfigError, load_config
from govnode.config.template import InitValues, render_config

PEERS = """
[[peers]]
id = "center"
url = "https://center.example.gov.ir:8443/"
ca_cert = "peers/center-ca.pem"
signing_key = "peers/center-signing.pem"

[[peers]]
id = "fars"
url = "https://fars.example.gov.ir:8443"
fingerprint = "AB:{pin}"
signing_key = "/etc/govnode/peers/fars-signing.pem"
max_concurrency = 2
""".replace("{pin}", "cd" * 31)


def home(tmp_path: Path, federation: str = "", peers: str = PEERS) -> Path:
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "ldap-bind-password").write_text("s3cret\n")
    text = render_config(InitValues())
    if federation:
        text = text.replace('default_route = "-"\n', "").replace("routes = {}\n", federation + "\n")
    if peers.startswith("peers ="):  # a top-level key: before every table
        text, peers = peers + text, ""
    path = tmp_path / "govnode.toml"
    path.write_text(text + peers, encoding="utf-8")
    return path


def test_no_peers_and_no_routes_by_default(tmp_path: Path) -> None:
    config = load_config(home(tmp_path, peers=""))
    assert config.peers == ()
    assert config.federation.default_route is None
    assert config.federation.routes == {}
    assert (config.federation.retry_min, config.federation.retry_max) == (300, 3600)
    assert config.federation.lifetime == 5 * 86400


def test_peers_and_routes_are_read(tmp_path: Path) -> None:
    config = load_config(home(tmp_path, 'default_route = "center"\nroutes = { isfahan = "fars" }'))
    center, fars = config.peers
    assert center.id == "center"
    assert center.url == "https://center.example.gov.ir:8443"
    assert center.ca_cert == tmp_path / "peers" / "center-ca.pem"
    assert center.fingerprint is None
    assert fars.fingerprint == "ab" + "cd" * 31
    assert fars.signing_key == Path("/etc/govnode/peers/fars-signing.pem")
    assert fars.max_concurrency == 2
    assert config.federation.default_route == "center"
    assert config.federation.routes == {"isfahan": "fars"}


@pytest.mark.parametrize(
    ("federation", "peers", "key"),
    [
        ('default_route = "tehran"\nroutes = {}', PEERS, "federation.default_route"),
        (
            'default_route = "-"\nroutes = { isfahan = "tehran" }',
            PEERS,
            "federation.routes.isfahan",
        ),
        ("", PEERS.replace('id = "fars"', 'id = "kb"'), "peers[1].id"),
        ("", PEERS.replace('id = "fars"', 'id = "center"'), "peers[1].id"),
        ("", PEERS.replace("https://center", "http://center"), "peers[0].url"),
        ("", PEERS.replace('ca_cert = "peers/center-ca.pem"\n', ""), "peers[0].ca_cert"),
        ("", PEERS.replace("AB:", "zz"), "peers[1].fingerprint"),
        (
            "",
            PEERS.replace("max_concurrency = 2", "max_concurrency = 0"),
            "peers[1].max_concurrency",
        ),
        (
            "",
            PEERS.replace("max_concurrency = 2", "max_conncurrency = 2"),
            "peers[1].max_conncurrency",
        ),
        (
            "",
            PEERS.replace('signing_key = "peers/center-signing.pem"\n', ""),
            "peers[0].signing_key",
        ),
        ("", "peers = 3\n", "peers"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, federation: str, peers: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(home(tmp_path, federation, peers))
    assert refused.value.key == key, str(refused.value)
