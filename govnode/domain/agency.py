"""Agencies: the parties of the network, as the directory describes them."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

CODE_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
"""An agency code: a lowercase slug of at most 32 characters (`edu`, `edu-dena`)."""

NODE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
"""A node id: a short lowercase name (`kb`, `center`)."""

PHASES = (1, 2, 3)


class AgencyStatus(enum.StrEnum):
    """Where an agency stands with this node, derived from its certificates."""

    ACTIVE = "active"  # holds a valid, unrevoked certificate
    PENDING = "pending"  # in the directory, not (or no longer) enrolled
    SUSPENDED = "suspended"  # its certificate was revoked


def is_agency_code(value: str) -> bool:
    return CODE_PATTERN.fullmatch(value) is not None


def is_node_id(value: str) -> bool:
    return NODE_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Agency:
    """One agency as the directory holds it (no enrollment state)."""

    code: str
    name_fa: str
    name_en: str
    kind: str
    phase: int
    parent: str | None = None
    county: str | None = None
