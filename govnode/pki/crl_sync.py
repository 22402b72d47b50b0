"""Several servers on one PostgreSQL database: each keeps its own CRL file in step.

`govnode agency revoke` on one server's home writes the revocation into the
shared database and that home's CRL; every other server finds the database
listing a certificate its own CRL does not, and publishes a new one at its
next reload, within `reload_interval` seconds.
"""

from __future__ import annotations

from govnode.pki import ca
from govnode.pki.authority import NodeAuthority
from govnode.store import certificates


def crl_behind(authority: NodeAuthority) -> bool:
    """True when this home's CRL does not list exactly the database's revocations."""
    path = authority.tls.crl
    if not path.exists():
        return True
    listed = {entry.serial_number for entry in ca.load_crl(path.read_bytes())}
    revoked = {serial for serial, _ in authority.db.read_sync(certificates.thd_revoked)}
    return listed != revoked
