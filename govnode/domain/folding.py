"""Persian-aware text folding for directory search (the rules of API.md).

Agencies type Arabic letters for Persian ones, drop or add zero-width
non-joiners, mix digit scripts and sprinkle diacritics. Folding both the query
and the names to one canonical form makes them compare equal; every character
the rules do not name stays literal, so nothing can act as a wildcard.
"""

from __future__ import annotations

import re

_ZWNJ = "\u200c"

_CHARACTER_MAP = {
    # Arabic yeh and alef maksura become Persian yeh, Arabic kaf Persian kaf.
    "\u064a": "\u06cc",
    "\u0649": "\u06cc",
    "\u0643": "\u06a9",
    # Alef with hamza above or below becomes bare alef.
    "\u0623": "\u0627",
    "\u0625": "\u0627",
    # Tatweel is dropped.
    "\u0640": None,
    # The zero-width non-joiner counts as a space.
    _ZWNJ: " ",
}
_CHARACTER_MAP.update({chr(c): None for c in range(0x064B, 0x0660)})  # harakat, shadda, sukun
_CHARACTER_MAP["\u0670"] = None  # superscript alef
_CHARACTER_MAP.update({chr(0x06F0 + d): str(d) for d in range(10)})  # Persian digits
_CHARACTER_MAP.update({chr(0x0660 + d): str(d) for d in range(10)})  # Arabic-Indic digits

_TRANSLATION = str.maketrans(_CHARACTER_MAP)
_WHITESPACE_RUN = re.compile(r"\s+")


def fold(text: str) -> str:
    """Return the canonical search form of `text`.

    Idempotent (`fold(fold(x)) == fold(x)`) and total: it accepts any string,
    NUL and lone surrogates included, and never raises.
    """
    mapped = text.translate(_TRANSLATION)
    spaced = _WHITESPACE_RUN.sub(" ", mapped).strip()
    folded = spaced.casefold()
    # Case folding can itself produce characters the map covers (it does not
    # today, but Unicode grows); folding again keeps the function idempotent.
    if folded != folded.translate(_TRANSLATION):
        return fold(folded)
    return folded


def matches(query: str, *, code: str, name_fa: str, name_en: str) -> bool:
    """The reference match of API.md: a substring of a name, or the code itself."""
    folded = fold(query)
    if not folded:
        return False
    return folded in fold(name_fa) or folded in fold(name_en) or folded == code.casefold()
