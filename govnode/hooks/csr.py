"""Whether the node CA would sign a certificate signing request (for plugins that
take one in, so a bad request is refused when it is handed in, not when issued)."""

from __future__ import annotations

from govnode.pki.ca import requested_key
from govnode.pki.errors import PkiError


def check_csr(pem: bytes) -> None:
    """ValueError saying why the node CA would refuse `pem`; None when it would sign it."""
    try:
        requested_key(pem)
    except PkiError as exc:
        raise ValueError(str(exc)) from None
