"""Errors of the node PKI.

Kept small on purpose: the CLI and the node only need to tell "the PKI refused"
(``PkiError``) from "a certificate, key or CRL file is missing or unreadable"
(``CertificateFileError``), and every message already names what went wrong.
"""

from __future__ import annotations


class PkiError(Exception):
    """The node PKI cannot do what was asked (bad input, key mismatch, ...)."""


class CertificateFileError(PkiError):
    """A certificate, key or CRL file is missing, unreadable or malformed.

    The message names the path and what was expected there, so an operator can
    fix the file without reading a traceback.
    """
