"""A letter may say when an answer is due (`reply_by`): stored, shown, checked."""

from __future__ import annotations

from tests.api.test_letters import ClientFactory, letter, logged_in, submit


def test_reply_by_is_kept_and_shown_in_utc(govnode_client: ClientFactory) -> None:
    edu = logged_in(govnode_client, "edu")
    sent = submit(edu, letter(reply_by="2099-01-10"))
    shown = edu.request("GET", f"/api/v1/letters/{sent.json()['id']}").json()
    # The end of 10 January 2099 in Tehran (UTC+03:30).
    assert shown["reply_by"] == "2099-01-10T20:29:59Z"
    plain = submit(edu, letter())
    assert edu.request("GET", f"/api/v1/letters/{plain.json()['id']}").json()["reply_by"] is None


def test_bad_or_past_reply_by_is_refused_naming_the_field(govnode_client: ClientFactory) -> None:
    edu = logged_in(govnode_client, "edu")
    for value, words in (
        ("1405/13/40", "is not a date"),
        ("2001-01-01", "in the past"),
        (5, "date or time string"),
    ):
        refused = submit(edu, letter(reply_by=value), expect=400)
        error = refused.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_field", "reply_by")
        assert words in error["message"]
