"""Database URLs as they may be shown: never with their password."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_PASSWORD = re.compile(r"(//[^:/@]*:)[^@/]*@")


def shown_url(url: str) -> str:
    """`url` with its password replaced by `***`, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not a URL SQLAlchemy reads (a config error): hide what looks like one.
        return _PASSWORD.sub(r"\1***@", url)
