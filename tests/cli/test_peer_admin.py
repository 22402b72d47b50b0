"""`govnode peer add|list|remove`, and peers.toml read together with govnode.toml's [[peers]]."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from govnode.config import ConfigError, load_config
from govnode.pki import ca, signing
from govnode.pki.files import write_atomic
from govnode.store.database import Database
from govnode.store.schema import audit
from govnode.testing.home import configure, init_home
from govnode.testing.slapd import Slapd
from tests.cli.peer_files import peer_files
from tests.cli.support import Govnode, run, snapshot

HAND_WRITTEN = """
[[peers]]
id = "fars"
url = "https://fars.example:8444"
ca_cert = "peers/fars-ca.pem"
signing_key = "peers/fars-signing.pem"
"""


def add(govnode: Govnode, peer: str, ca_cert: Path, key: Path, *extra: str) -> tuple[int, str, str]:
    result = govnode(
        "peer", "add", peer, "--url", f"https://{peer}.example:8444/",
        "--ca-cert", ca_cert, "--signing-key", key, *extra,
    )  # fmt: skip
    return result.code, result.out, result.err


def audit_kinds(govnode: Govnode) -> list[tuple[str, str, str]]:
    db = Database(govnode.config.database.url)
    try:
        rows = db.read_sync(
            lambda conn: conn.execute(
                select(audit.c.kind, audit.c.actor, audit.c.subject).where(
                    audit.c.kind.like("peer.%")
                )
            ).all()
        )
    finally:
        db.stop()
    return [(kind, actor, subject) for kind, actor, subject in rows]


def files(home: Path) -> dict[str, tuple[bytes, int]]:
    """The home's files but the database (whose pages move when it is merely opened)."""
    return {name: held for name, held in snapshot(home).items() if not name.startswith("data/")}


def hand_write_fars(govnode: Govnode) -> None:
    """fars in govnode.toml's [[peers]], as `peer export` told operators before `peer add`."""
    peer_files(govnode.home / "peers", "fars")  # peers/fars-ca.pem, peers/fars-signing.pem
    with (govnode.home / "govnode.toml").open("a", encoding="utf-8") as config:
        config.write(HAND_WRITTEN)


def test_add_copies_the_files_and_the_node_reads_the_peer(govnode: Govnode, tmp_path: Path) -> None:
    ca_cert, key = peer_files(tmp_path / "export", "center")

    code, out, err = add(govnode, "center", ca_cert, key, "--max-concurrency", "2")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(
        f"peer center added to {govnode.home / 'peers.toml'}: https://center.example:8444, "
        "CA O=node center,CN=govnode center CA until "
    )
    assert lines[1].startswith('no route leads to it yet: set default_route = "center"')
    assert lines[2] == (
        "the running node uses the change once restarted (systemctl restart govnode)"
    )
    folder = govnode.home / "peers" / "center"
    assert (folder / "ca.pem").read_bytes() == ca_cert.read_bytes()
    assert (folder / "signing.pem").read_bytes() == key.read_bytes()
    (peer,) = govnode.config.peers
    assert (peer.id, peer.url, peer.max_concurrency) == ("center", "https://center.example:8444", 2)
    assert (peer.ca_cert, peer.signing_key) == (folder / "ca.pem", folder / "signing.pem")
    assert peer.defined_in == govnode.home / "peers.toml"
    # Routes may name it now, and the node's config loads with them.
    assert configure(govnode.home, default_route="center").federation.default_route == "center"
    assert audit_kinds(govnode)[0][0::2] == ("peer.add", "center")
    assert govnode("audit", "verify").code == 0


def test_the_two_ends_export_then_add(
    govnode: Govnode, tmp_path: Path, govnode_slapd: Slapd, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the README shows: center's operator exports, kb's operator adds."""
    center = tmp_path / "center"
    init_home(center, govnode_slapd, node_id="center", name="مرکز ملی")
    exported = run(
        capsys, "--home", center, "peer", "export", "--out", tmp_path / "give",
        "--url", "https://center.example:8444",
    )  # fmt: skip
    assert exported.code == 0
    assert (
        f"govnode peer add center --url https://center.example:8444 "
        f"--ca-cert {tmp_path / 'give' / 'center-ca.pem'} "
        f"--signing-key {tmp_path / 'give' / 'center-signing.pem'}"
    ) in exported.out

    code, _, err = add(
        govnode,
        "center",
        tmp_path / "give" / "center-ca.pem",
        tmp_path / "give" / "center-signing.pem",
    )

    assert code == 0, err
    (peer,) = govnode.config.peers
    assert peer.ca_cert is not None
    assert peer.ca_cert.read_bytes() == (center / "pki" / "ca.pem").read_bytes()
    center_key = (center / "pki" / "signing.key").read_bytes()
    assert peer.signing_key.read_bytes() == signing.public_pem(center_key)


def test_list_shows_where_each_peer_is_defined_and_its_ca(govnode: Govnode, tmp_path: Path) -> None:
    hand_write_fars(govnode)
    assert add(govnode, "center", *peer_files(tmp_path / "export", "center"))[0] == 0

    listed = govnode("peer", "list")

    assert listed.code == 0, listed.err
    header, fars, center = listed.out.splitlines()
    assert header.split() == ["PEER", "URL", "DEFINED", "IN", "CA", "EXPIRES", "CA"]
    expires = (datetime.now(UTC) + timedelta(days=3650)).strftime("%Y-%m-%d")
    assert fars.split()[:4] == ["fars", "https://fars.example:8444", "govnode.toml", expires]
    assert center.split()[:4] == ["center", "https://center.example:8444", "peers.toml", expires]
    assert center.endswith("O=node center,CN=govnode center CA")
    rows = {row["id"]: row for row in json.loads(govnode("peer", "list", "--json").out)}
    assert rows["center"]["defined_in"] == str(govnode.home / "peers.toml")
    assert rows["fars"]["defined_in"] == str(govnode.home / "govnode.toml")
    assert rows["center"]["ca_expires"].startswith(expires)
    assert rows["center"]["problem"] is None


def test_list_names_a_peer_whose_files_are_gone(govnode: Govnode, tmp_path: Path) -> None:
    assert add(govnode, "center", *peer_files(tmp_path / "export", "center"))[0] == 0
    (govnode.home / "peers" / "center" / "signing.pem").unlink()

    listed = govnode("peer", "list")

    assert listed.code == 1
    assert "PROBLEM: cannot read " + str(govnode.home / "peers/center/signing.pem") in listed.out


def test_no_peers(govnode: Govnode) -> None:
    listed = govnode("peer", "list")
    assert (listed.code, listed.out.startswith("no peers: none in ")) == (0, True)


def test_remove_takes_the_peer_and_its_files_away(govnode: Govnode, tmp_path: Path) -> None:
    assert add(govnode, "center", *peer_files(tmp_path / "center", "center"))[0] == 0
    assert add(govnode, "isfahan", *peer_files(tmp_path / "isfahan", "isfahan"))[0] == 0

    removed = govnode("peer", "remove", "center")

    assert removed.code == 0, removed.err
    assert removed.out.splitlines() == [
        f"peer center removed from {govnode.home / 'peers.toml'}",
        "the running node uses the change once restarted (systemctl restart govnode)",
    ]
    assert [peer.id for peer in govnode.config.peers] == ["isfahan"]
    assert not (govnode.home / "peers" / "center").exists()
    assert (govnode.home / "peers" / "isfahan" / "ca.pem").exists()
    assert govnode("peer", "remove", "isfahan").code == 0
    assert govnode.config.peers == ()
    assert [kind for kind, _, _ in audit_kinds(govnode)] == [
        "peer.add",
        "peer.add",
        "peer.remove",
        "peer.remove",
    ]
    # ...and it can come back.
    assert add(govnode, "center", *peer_files(tmp_path / "again", "center"))[0] == 0


def test_remove_refuses_what_it_did_not_add_or_what_routes_use(
    govnode: Govnode, tmp_path: Path
) -> None:
    hand_write_fars(govnode)
    assert add(govnode, "center", *peer_files(tmp_path / "center", "center"))[0] == 0
    configure(govnode.home, default_route="center")
    before = files(govnode.home)

    results = {peer: govnode("peer", "remove", peer) for peer in ("fars", "center", "tehran")}

    assert {peer: r.code for peer, r in results.items()} == {"fars": 1, "center": 1, "tehran": 1}
    assert results["fars"].err == (
        f"govnode: peer fars is configured in {govnode.home / 'govnode.toml'} ([[peers]]); "
        "remove it there\n"
    )
    assert results["center"].err == (
        f"govnode: {govnode.home / 'govnode.toml'}: federation.default_route sends letters "
        "through center; change that first\n"
    )
    assert results["tehran"].err == "govnode: no peer 'tehran' (peers: fars, center)\n"
    assert files(govnode.home) == before


def _expired_ca(folder: Path) -> Path:
    long_ago = datetime.now(UTC) - timedelta(days=400)
    old = ca.create_ca("center", "center", now=long_ago, valid_days=30)
    write_atomic(folder / "old-ca.pem", old.cert_pem)
    return folder / "old-ca.pem"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("own id", "govnode: 'kb' is this node's own id; a peer is another node"),
        ("bad id", "govnode: 'Center!' is not a node id"),
        ("http", "govnode: --url: must be an https:// URL, not 'http://center.example'"),
        ("missing ca", "govnode: --ca-cert: cannot read {tmp}/nothing.pem: No such file"),
        ("garbage ca", "govnode: --ca-cert: {tmp}/export/center-signing.pem is not a PEM cert"),
        ("leaf ca", "govnode: --ca-cert: {home}/pki/node.pem holds a certificate that is not a CA"),
        ("other node's ca", "govnode: --ca-cert: {tmp}/fars/fars-ca.pem is the CA of node 'fars',"),
        ("expired ca", "govnode: --ca-cert: {tmp}/old-ca.pem expired on "),
        ("private key", "govnode: --signing-key: {home}/pki/signing.key is a private key; give"),
        ("garbage key", "govnode: --signing-key: {tmp}/export/center-ca.pem is not a PEM public"),
        ("concurrency", "govnode: --max-concurrency: must be between 1 and 256, not 0"),
    ],
)
def test_add_refuses_bad_input_and_changes_nothing(
    govnode: Govnode, tmp_path: Path, case: str, message: str
) -> None:
    ca_cert, key = peer_files(tmp_path / "export", "center")
    peer, url, extra = "center", "https://center.example:8444", ["--max-concurrency", "4"]
    if case == "own id":
        peer = "kb"
    elif case == "bad id":
        peer = "Center!"
    elif case == "http":
        url = "http://center.example"
    elif case == "missing ca":
        ca_cert = tmp_path / "nothing.pem"
    elif case == "garbage ca":
        ca_cert = key
    elif case == "leaf ca":
        ca_cert = govnode.home / "pki" / "node.pem"
    elif case == "other node's ca":
        ca_cert, _ = peer_files(tmp_path / "fars", "fars")
    elif case == "expired ca":
        ca_cert = _expired_ca(tmp_path)
    elif case == "private key":
        key = govnode.home / "pki" / "signing.key"
    elif case == "garbage key":
        key = ca_cert
    elif case == "concurrency":
        extra = ["--max-concurrency", "0"]
    before = files(govnode.home)

    result = govnode(
        "peer", "add", peer, "--url", url, "--ca-cert", ca_cert, "--signing-key", key, *extra
    )

    assert result.code == 2
    assert result.err.startswith(message.format(tmp=tmp_path, home=govnode.home))
    assert result.err.count("\n") == 1
    assert files(govnode.home) == before
    assert audit_kinds(govnode) == []


def test_add_refuses_an_id_configured_in_either_file(govnode: Govnode, tmp_path: Path) -> None:
    hand_write_fars(govnode)
    assert add(govnode, "center", *peer_files(tmp_path / "center", "center"))[0] == 0
    before = files(govnode.home)

    twice = add(govnode, "center", *peer_files(tmp_path / "center2", "center"))
    in_config = add(govnode, "fars", *peer_files(tmp_path / "fars2", "fars"))

    assert twice[0::2] == (
        1,
        f"govnode: peer center is already configured in {govnode.home / 'peers.toml'}\n",
    )
    assert in_config[0::2] == (
        1,
        f"govnode: peer fars is already configured in {govnode.home / 'govnode.toml'}\n",
    )
    assert files(govnode.home) == before


# -- peers.toml and govnode.toml together ------------------------------------


def test_the_same_id_in_both_files_is_an_error_naming_both(
    govnode: Govnode, tmp_path: Path
) -> None:
    assert add(govnode, "fars", *peer_files(tmp_path / "fars", "fars"))[0] == 0
    hand_write_fars(govnode)  # then someone adds it by hand too

    with pytest.raises(ConfigError) as caught:
        load_config(govnode.home / "govnode.toml")
    result = govnode("queue")

    assert str(caught.value) == (
        f"{govnode.home / 'peers.toml'}: peers[0].id: peer 'fars' is also configured in "
        f"{govnode.home / 'govnode.toml'}; keep one"
    )
    assert (result.code, result.err) == (2, f"govnode: {caught.value}\n")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '[[peers]]\nid = "center"\nurl = "http://c"\nca_cert = "a"\nsigning_key = "b"\n',
            "peers[0].url: must be an https:// URL, not 'http://c'",
        ),
        (
            '[[peers]]\nid = "center"\nurl = "https://c"\nsigning_key = "b"\n',
            "peers[0].ca_cert: give either ca_cert (the peer's CA) or fingerprint",
        ),
        (
            '[[peers]]\nid = "center"\nurl = "https://c"\nca_cert = "a"\nsigning_key = "b"\n'
            "max_concurency = 2\n",
            "peers[0].max_concurency: is not a known setting (misspelled?)",
        ),
        ('default_route = "center"\n', "default_route: is not a known setting (misspelled?)"),
        ("[[peers]\n", "is not valid TOML: "),
    ],
)
def test_a_wrong_peers_toml_names_that_file_and_the_key(
    govnode: Govnode, text: str, error: str
) -> None:
    (govnode.home / "peers.toml").write_text(text, encoding="utf-8")

    result = govnode("peer", "list")

    assert result.code == 2
    assert result.err.startswith(f"govnode: {govnode.home / 'peers.toml'}: {error}")


def test_a_route_may_name_a_peer_of_peers_toml(govnode: Govnode, tmp_path: Path) -> None:
    assert add(govnode, "center", *peer_files(tmp_path / "center", "center"))[0] == 0
    config = govnode.home / "govnode.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("routes = {}", 'routes = { tehran = "center" }'),
        encoding="utf-8",
    )
    assert load_config(config).federation.routes == {"tehran": "center"}
    (govnode.home / "peers.toml").unlink()  # without it, the route names no peer

    with pytest.raises(ConfigError, match=r"federation\.routes\.tehran: next hop 'center' is not"):
        load_config(config)
