"""/api/v1/openapi.json describes exactly the routes the node serves."""

from __future__ import annotations

import re
from collections.abc import Callable

from govnode.api.agency import AgencyApi
from govnode.api.openapi import openapi_document
from govnode.testing.client import AgencyClient

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def served_routes() -> set[tuple[str, str]]:
    routes = set()
    for rule in AgencyApi.app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method.lower() in HTTP_METHODS:
                routes.add((path, method.lower()))
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_document_and_routes_agree() -> None:
    assert served_routes() == documented_routes()


def test_every_documented_answer_is_described() -> None:
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], f"{method} {path} documents no answer"
            assert operation["summary"]


def test_served_without_authentication(
    govnode_client: Callable[[str | None], AgencyClient],
) -> None:
    response = govnode_client("edu").request("GET", "/api/v1/openapi.json")
    assert response.status == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/directory" in document["paths"]
