"""Addresses of agencies: `code@node`, or a bare code meaning this node."""

from __future__ import annotations

from dataclasses import dataclass

from govnode.domain.agency import is_agency_code, is_node_id


class InvalidAddress(ValueError):
    """The text is not an agency address."""


@dataclass(frozen=True, slots=True)
class Address:
    code: str
    node: str

    def __str__(self) -> str:
        return f"{self.code}@{self.node}"

    @classmethod
    def parse(cls, text: str, *, local_node: str) -> Address:
        """Parse `edu@kb` or `edu` (which means `edu@<local_node>`)."""
        code, at, node = text.strip().lower().partition("@")
        if not at:
            node = local_node
        if not is_agency_code(code):
            raise InvalidAddress(f"{text!r} is not an agency address (code@node)")
        if not is_node_id(node):
            raise InvalidAddress(f"{text!r} does not name a node after '@'")
        return cls(code=code, node=node)
