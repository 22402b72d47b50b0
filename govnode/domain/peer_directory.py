"""Peer directories: what a node serves its peers about itself and the nodes behind it.

A node serves its own agencies and, for each node it can vouch for (its
peers, and what they vouched for in turn), that node's agencies and signing
key. A node believes a directory entry, and the key in it, only from the peer
it routes that node's letters through: it trusts that peer with the letters
already. Keys configured in `[[peers]]` are never replaced by served ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from govnode.domain.agency import PHASES, AgencyStatus, is_agency_code, is_node_id
from govnode.domain.envelope import EnvelopeInvalid

MAX_AGENCIES = 20_000  # per node: a province has a few hundred, the center a few dozen


@dataclass(frozen=True, slots=True)
class RemoteAgency:
    """An agency of another node, as its node describes it (the agency API's object)."""

    node: str
    code: str
    name_fa: str
    name_en: str
    kind: str
    phase: int
    parent: str | None
    county: str | None
    status: str

    def document(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "address": f"{self.code}@{self.node}",
            "name": self.name_fa,
            "name_en": self.name_en,
            "kind": self.kind,
            "phase": self.phase,
            "parent": self.parent,
            "county": self.county,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class NodeDirectory:
    node: str
    signing_key: str | None  # PEM public key, as the serving node knows it
    # None: the serving node knows the key but has not had this node's directory yet.
    agencies: tuple[RemoteAgency, ...] | None

    def document(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "signing_key": self.signing_key,
            "agencies": None
            if self.agencies is None
            else [agency.document() for agency in self.agencies],
        }


def read_directories(document: object, *, peer: str) -> list[NodeDirectory]:
    """What `peer` served (`GET /federation/v1/directory`): its own directory
    first, then the nodes behind it. EnvelopeInvalid names a bad field."""
    if not isinstance(document, dict) or not isinstance(document.get("nodes"), list):
        raise EnvelopeInvalid("nodes", "must be a list of node directories")
    directories = [
        _node_directory(item, f"nodes[{index}]") for index, item in enumerate(document["nodes"])
    ]
    if not directories or directories[0].node != peer:
        raise EnvelopeInvalid("nodes[0].node", f"must be the serving node, {peer}")
    return directories


def _node_directory(value: object, field: str) -> NodeDirectory:
    if not isinstance(value, dict):
        raise EnvelopeInvalid(field, "must be an object")
    node = value.get("node")
    if not isinstance(node, str) or not is_node_id(node):
        raise EnvelopeInvalid(f"{field}.node", "must be a node id")
    key = value.get("signing_key")
    if key is not None and (not isinstance(key, str) or "PUBLIC KEY" not in key):
        raise EnvelopeInvalid(f"{field}.signing_key", "must be a PEM public key or null")
    agencies = value.get("agencies")
    if agencies is None:
        return NodeDirectory(node, key, None)
    if not isinstance(agencies, list) or len(agencies) > MAX_AGENCIES:
        raise EnvelopeInvalid(
            f"{field}.agencies", f"must be null or a list of at most {MAX_AGENCIES}"
        )
    return NodeDirectory(
        node,
        key,
        tuple(
            _agency(node, item, f"{field}.agencies[{index}]") for index, item in enumerate(agencies)
        ),
    )


def _agency(node: str, value: object, field: str) -> RemoteAgency:
    if not isinstance(value, dict):
        raise EnvelopeInvalid(field, "must be an object")
    code = _text(value, "code", field)
    if not is_agency_code(code):
        raise EnvelopeInvalid(f"{field}.code", "must be an agency code")
    phase = value.get("phase")
    if phase not in PHASES or isinstance(phase, bool):
        raise EnvelopeInvalid(f"{field}.phase", "must be 1, 2 or 3")
    status = _text(value, "status", field)
    if status not in {str(s) for s in AgencyStatus}:
        raise EnvelopeInvalid(f"{field}.status", "must be active, pending or suspended")
    assert isinstance(phase, int)
    return RemoteAgency(
        node=node,
        code=code,
        name_fa=_text(value, "name", field),
        name_en=_text(value, "name_en", field, empty=True),
        kind=_text(value, "kind", field),
        phase=phase,
        parent=_optional(value, "parent", field),
        county=_optional(value, "county", field),
        status=status,
    )


def _text(value: Mapping[str, Any], name: str, field: str, *, empty: bool = False) -> str:
    text = value.get(name)
    if not isinstance(text, str) or (not empty and not text):
        raise EnvelopeInvalid(f"{field}.{name}", "must be a non-empty string")
    return text


def _optional(value: Mapping[str, Any], name: str, field: str) -> str | None:
    text = value.get(name)
    if text is not None and not isinstance(text, str):
        raise EnvelopeInvalid(f"{field}.{name}", "must be a string or null")
    return text
