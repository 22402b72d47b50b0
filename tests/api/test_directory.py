"""GET /api/v1/directory over mutual TLS, against the cache synced from slapd."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from govnode.testing.client import AgencyClient
from govnode.testing.demo_data import demo_file, load_agencies
from tests.search_cases import search_cases

AGENCIES = {agency.code: agency for agency in load_agencies(demo_file("agencies.csv"))}


@pytest.fixture
def edu(govnode_client: Callable[[str | None], AgencyClient]) -> AgencyClient:
    client = govnode_client("edu")
    assert client.login("edu", "demo-edu").status == 200
    return client


def search(client: AgencyClient, **query: str) -> Any:
    response = client.request("GET", "/api/v1/directory", query=query)
    assert response.status == 200, response.body
    return response.json()


@pytest.mark.parametrize(("query", "expected", "note"), search_cases())
def test_every_worked_search_case(
    edu: AgencyClient, query: str, expected: frozenset[str], note: str
) -> None:
    answer = search(edu, q=query, limit="500")
    codes = [agency["code"] for agency in answer["agencies"]]
    assert set(codes) == expected, note
    assert answer["total"] == len(expected)
    assert codes == sorted(codes), "results are ordered by code"


def test_agency_objects_carry_the_contract_fields(edu: AgencyClient) -> None:
    answer = search(edu, q="welfare-dena")
    (agency,) = answer["agencies"]
    assert agency == {
        "code": "welfare-dena",
        "address": "welfare-dena@kb",
        "name": AGENCIES["welfare-dena"].name_fa,
        "name_en": AGENCIES["welfare-dena"].name_en,
        "kind": "county-office",
        "phase": 3,
        "parent": "welfare",
        "county": "dena",
        "status": "pending",
    }


def test_filters_paging_and_total(edu: AgencyClient) -> None:
    phase_three = sorted(code for code, a in AGENCIES.items() if a.phase == 3)
    first = search(edu, phase="3", limit="50")
    second = search(edu, phase="3", limit="50", offset="50")
    assert first["total"] == second["total"] == len(phase_three) == 70
    pages = first["agencies"] + second["agencies"]
    assert [agency["code"] for agency in pages] == phase_three
    children = search(edu, parent="edu")
    assert {a["code"] for a in children["agencies"]} == {
        code for code, a in AGENCIES.items() if a.parent == "edu"
    }
    dena = search(edu, county="dena", phase="3")
    assert dena["total"] == sum(1 for a in AGENCIES.values() if a.county == "dena" and a.phase == 3)
    assert search(edu)["total"] == len(AGENCIES)
    assert len(search(edu)["agencies"]) == 50


def test_status_follows_enrollment(edu: AgencyClient) -> None:
    agencies = search(edu, limit="500")["agencies"]
    statuses = {agency["code"]: agency["status"] for agency in agencies}
    assert statuses["edu"] == "active"
    assert statuses["edu-dena"] == "active"
    assert statuses["agri"] == "pending"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"phase": "4"}, "phase"),
        ({"limit": "²"}, "limit"),
    ],
)
def test_bad_query_parameters_name_the_field(
    edu: AgencyClient, query: dict[str, str], field: str
) -> None:
    response = edu.request("GET", "/api/v1/directory", query=query)
    assert response.status == 400
    assert response.json()["error"] == {
        "code": "invalid_field",
        "field": field,
        "message": response.json()["error"]["message"],
    }


def test_lookup_by_code_or_address(edu: AgencyClient) -> None:
    by_code = edu.request("GET", "/api/v1/directory/welfare").json()
    by_address = edu.request("GET", "/api/v1/directory/welfare@kb").json()
    assert by_code == by_address
    assert by_code["address"] == "welfare@kb"
    assert len(by_code["certificate_fingerprint_sha256"]) == 64
    pending = edu.request("GET", "/api/v1/directory/agri").json()
    assert "certificate_fingerprint_sha256" not in pending


@pytest.mark.parametrize("code", ["no-such-agency", "presidency@center", "bad%20code", "EDU@@kb"])
def test_lookup_of_unknown_agencies_is_404(edu: AgencyClient, code: str) -> None:
    response = edu.request("GET", f"/api/v1/directory/{code}")
    assert response.status == 404
    assert response.error_code == "not_found"


def test_wrong_methods_say_which_are_allowed(edu: AgencyClient) -> None:
    response = edu.request("PUT", "/api/v1/directory")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.error_code is not None


def test_the_server_does_not_announce_its_software_version(edu: AgencyClient) -> None:
    assert edu.request("GET", "/api/v1/directory/edu").headers["server"] == "govnode"
