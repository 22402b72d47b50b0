"""Persian folding: the rules of API.md, and the properties search relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govnode.domain.folding import fold, matches
from govnode.testing.demo_data import demo_file, load_agencies
from tests.search_cases import search_cases

AGENCIES = load_agencies(demo_file("agencies.csv"))


@pytest.mark.parametrize(("query", "expected", "note"), search_cases())
def test_reference_matching_gives_every_worked_case(
    query: str, expected: frozenset[str], note: str
) -> None:
    found = {
        agency.code
        for agency in AGENCIES
        if matches(query, code=agency.code, name_fa=agency.name_fa, name_en=agency.name_en)
    }
    assert found == expected, note


@pytest.mark.parametrize(
    ("typed", "folded"),
    [
        ("بهزيستي", "بهزیستی"),  # Arabic yeh
        ("سوادآموزى", "سوادآموزی"),  # alef maksura
        ("كشاورزی", "کشاورزی"),  # Arabic kaf
        ("أداره إداره", "اداره اداره"),  # hamza forms of alef
        ("ناحیه ۱ و ٢ و 3", "ناحیه 1 و 2 و 3"),  # three digit scripts
        ("مُدِیریّت", "مدیریت"),  # diacritics and tashdid
        ("آمــوزش", "آموزش"),  # tatweel
        ("زندان\u200cها", "زندان ها"),  # ZWNJ
        ("  Roads \t and\n URBAN  ", "roads and urban"),  # whitespace and case
        ("(ره)", "(ره)"),  # everything else literal
        ("*)(uid=*", "*)(uid=*"),
    ],
)
def test_folding_rules(typed: str, folded: str) -> None:
    assert fold(typed) == folded


@given(st.text())
def test_folding_is_idempotent_and_total(text: str) -> None:
    once = fold(text)
    assert fold(once) == once


@given(st.text())
def test_folded_text_has_no_runs_of_space_nor_edges(text: str) -> None:
    folded = fold(text)
    assert folded == folded.strip()
    assert "  " not in folded
    assert "\u200c" not in folded
