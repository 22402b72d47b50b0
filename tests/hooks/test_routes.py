"""`govnode_api_routes`: a plugin's routes under `/api/v1/x/<plugin>/`, for
authenticated agencies only, answering in the API's error shape."""

from __future__ import annotations

from govnode.testing.process import NodeProcess
from tests.hooks.conftest import ClientFactory
from tests.hooks.support import Record, hook_errors, logged_in, submit

HELLO = "/api/v1/x/probe/hello"


def test_a_plugin_route_answers_the_authenticated_caller(
    client: ClientFactory, record: Record
) -> None:
    edu = logged_in(client("edu"), "edu")
    dabir = logged_in(client("edu"), "dabir.edu")  # a user inside edu

    response = edu.request("GET", HELLO, query={"name": "سلام"})
    as_user = dabir.request("GET", HELLO)

    assert response.status == 200, response.body
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "hello": "edu@kb",
        "agency": "edu",
        "user": "edu",
        "node": "kb",
        "name": "سلام",
    }
    assert as_user.status == 200, as_user.body
    assert as_user.json()["user"] == "dabir.edu"
    assert len(record.calls("route", path="hello", agency="edu")) >= 2


def test_a_plugin_route_needs_a_token(client: ClientFactory, record: Record) -> None:
    before = len(record.calls("route"))

    response = client("edu").request("GET", HELLO)
    bad_token = client("edu").request("GET", HELLO, token="not-a-token")
    posted = client("edu").request("POST", "/api/v1/x/probe/echo", json_body={"a": 1})

    for answer in (response, bad_token, posted):
        assert answer.status == 401, answer.body
        assert answer.error_code == "unauthenticated"
    assert len(record.calls("route")) == before  # the handler never ran


def test_a_token_of_another_agency_is_refused(client: ClientFactory) -> None:
    welfare = logged_in(client("welfare"), "welfare")
    assert welfare.token is not None

    response = client("edu").request("GET", HELLO, token=welfare.token)

    assert response.status == 403, response.body
    assert response.error_code == "agency_mismatch"


def test_a_plugin_route_takes_a_json_body_params_and_other_content(
    client: ClientFactory,
) -> None:
    edu = logged_in(client("edu"), "edu")
    sent = submit(edu)
    assert sent.status == 201, sent.body

    echoed = edu.request("POST", "/api/v1/x/probe/echo", json_body={"شماره": [1, 2]})
    letter = edu.request("GET", f"/api/v1/x/probe/letters/{sent.json()['id']}")
    report = edu.request("GET", "/api/v1/x/probe/report.csv")

    assert echoed.status == 201, echoed.body
    assert echoed.json() == {"echo": {"شماره": [1, 2]}, "from": "edu@kb"}
    assert letter.status == 200, letter.body
    assert letter.json() == {
        "id": sent.json()["id"],
        "number": sent.json()["number"],
        "sender": "edu@kb",
    }
    assert report.status == 200
    assert report.headers["content-type"] == "text/csv"
    assert report.body == b"code,count\nprobe,1\n"


def test_a_route_that_raises_answers_500_internal_without_the_traceback(
    client: ClientFactory, probe_node: NodeProcess
) -> None:
    edu = logged_in(client("edu"), "edu")
    before = hook_errors(probe_node.admin_url, "route")

    response = edu.request("GET", "/api/v1/x/probe/boom")

    assert response.status == 500
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "error": {"code": "internal", "message": "internal error; the node's log has the details"}
    }
    assert b"Traceback" not in response.body
    assert b"PROBE-SECRET-DETAIL" not in response.body
    assert hook_errors(probe_node.admin_url, "route") == before + 1
    assert "PROBE-SECRET-DETAIL" in probe_node.log_tail(200)  # the operator sees it


def test_a_refusal_of_a_route_is_its_status_code_and_field(client: ClientFactory) -> None:
    edu = logged_in(client("edu"), "edu")

    refused = edu.request("GET", "/api/v1/x/probe/refuse")
    unknown_letter = edu.request("GET", "/api/v1/x/probe/letters/01JD000000000000000000000")

    assert refused.status == 409, refused.body
    assert refused.json() == {
        "error": {"code": "probe_conflict", "message": "the probe refuses", "field": "why"}
    }
    assert unknown_letter.status == 404, unknown_letter.body
    assert unknown_letter.error_code == "not_found"


def test_paths_and_methods_no_plugin_offers_are_not_found(client: ClientFactory) -> None:
    edu = logged_in(client("edu"), "edu")

    no_route = edu.request("GET", "/api/v1/x/probe/nothing-here")
    no_plugin = edu.request("GET", "/api/v1/x/nope/hello")
    wrong_method = edu.request("DELETE", HELLO)

    assert no_route.status == 404, no_route.body
    assert no_route.error_code == "not_found"
    assert no_plugin.status == 404, no_plugin.body
    assert no_plugin.error_code == "not_found"
    assert wrong_method.status == 405, wrong_method.body
    assert wrong_method.headers["allow"] == "GET"
