"""What can go wrong when asking the directory."""

from __future__ import annotations


class DirectoryError(Exception):
    """Base of directory errors."""


class DirectoryUnavailable(DirectoryError):
    """LDAP cannot be reached, timed out, or refused our service account.

    Clients get 503 for this, never 401: a bad password and a dead directory
    must not look alike.
    """


class InvalidCredentials(DirectoryError):
    """No such user, more than one, or a wrong password: deliberately one answer."""
