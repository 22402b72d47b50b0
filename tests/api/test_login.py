"""Login over real mutual TLS against a real slapd (API.md, POST/DELETE /auth/token)."""

from __future__ import annotations

from collections.abc import Callable

from govnode.testing.client import AgencyClient

ClientFactory = Callable[[str | None], AgencyClient]


def test_agency_logs_in_with_its_directory_password(govnode_client: ClientFactory) -> None:
    client = govnode_client("edu")
    response = client.login("edu", "demo-edu")
    assert response.status == 200, response.body
    answer = response.json()
    assert answer["agency"] == "edu"
    assert answer["user"] == "edu"
    assert answer["token_type"] == "Bearer"
    assert len(answer["token"]) >= 43  # 256 bits, URL-safe base64
    assert answer["expires_at"].endswith("Z")
    assert client.request("GET", "/api/v1/directory/edu").status == 200


def test_user_inside_an_agency_logs_in_for_that_agency(govnode_client: ClientFactory) -> None:
    response = govnode_client("edu").login("dabir.edu", "demo-dabir.edu")
    assert response.status == 200, response.body
    assert response.json()["agency"] == "edu"
    assert response.json()["user"] == "dabir.edu"


def test_wrong_password_and_unknown_user_get_the_same_answer(
    govnode_client: ClientFactory,
) -> None:
    client = govnode_client("welfare")
    wrong = client.login("welfare", "not-the-password")
    unknown = client.login("no-such-agency", "whatever")
    assert wrong.status == unknown.status == 401
    assert wrong.json() == unknown.json()
    assert wrong.error_code == "invalid_credentials"


def test_token_of_one_agency_over_the_certificate_of_another_is_refused(
    govnode_client: ClientFactory,
) -> None:
    edu = govnode_client("edu")
    assert edu.login("edu", "demo-edu").status == 200
    welfare = govnode_client("welfare")
    response = welfare.request("GET", "/api/v1/directory", token=edu.token)
    assert response.status == 403
    assert response.error_code == "agency_mismatch"


def test_another_agencys_password_is_no_oracle_over_ones_certificate(
    govnode_client: ClientFactory,
) -> None:
    """Over welfare's certificate, edu's right password looks exactly like a wrong one."""
    client = govnode_client("welfare")
    right = client.login("edu", "demo-edu")
    wrong = client.login("edu", "not-edus-password")
    assert right.status == wrong.status == 401
    assert right.json() == wrong.json()
    assert right.error_code == "invalid_credentials"


def test_overlong_usernames_are_refused_before_ldap(govnode_client: ClientFactory) -> None:
    response = govnode_client("edu").login("x" * 257, "whatever")
    assert (response.status, response.error_code) == (400, "invalid_field")
    assert response.json()["error"]["field"] == "username"


def test_requests_without_a_token_are_unauthenticated(govnode_client: ClientFactory) -> None:
    client = govnode_client("edu")
    for token in (None, "forged-token"):
        response = client.request("GET", "/api/v1/directory", token=token or "")
        assert response.status == 401
        assert response.error_code == "unauthenticated"
        assert response.headers.get("www-authenticate") == "Bearer"


def test_logout_revokes_the_token(govnode_client: ClientFactory) -> None:
    client = govnode_client("roads")
    assert client.login("roads", "demo-roads").status == 200
    token = client.token
    assert client.request("DELETE", "/api/v1/auth/token").status == 204
    response = client.request("GET", "/api/v1/directory", token=token)
    assert response.status == 401


def test_malformed_login_bodies_get_clear_errors(govnode_client: ClientFactory) -> None:
    client = govnode_client("edu")
    not_json = client.request(
        "POST", "/api/v1/auth/token", body=b"{", headers={"Content-Type": "application/json"}
    )
    assert (not_json.status, not_json.error_code) == (400, "invalid_json")
    wrong_type = client.request(
        "POST",
        "/api/v1/auth/token",
        body=b"username=edu",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (wrong_type.status, wrong_type.error_code) == (415, "invalid_json")
    missing = client.request("POST", "/api/v1/auth/token", json_body={"username": "edu"})
    assert (missing.status, missing.error_code) == (400, "invalid_field")
    assert missing.json()["error"]["field"] == "password"
    unknown_path = client.request("GET", "/api/v1/nothing-here")
    assert (unknown_path.status, unknown_path.error_code) == (404, "not_found")
