"""The Mailchimp sandbox's merge fields: types, options, choices patched, the per-audience limit,
and member values refused as Mailchimp refuses them (400 "Your merge fields were invalid.")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.mailchimp import MailchimpSandbox
from kommo_sync.sandbox.server import SandboxServer
from tests.sandbox.test_sandbox_mailchimp import Api, assert_problem, member_path

EMAIL = "ada@acme.io"


@pytest.fixture
def sandbox() -> Iterator[tuple[MailchimpSandbox, Api, str]]:
    app = MailchimpSandbox(FakeClock(), merge_field_limit=6)
    list_id = app.add_list("Customers")  # FNAME, LNAME, ADDRESS, PHONE
    with SandboxServer(app) as server:
        yield app, Api(server.url), list_id


def create(api: Api, list_id: str, tag: str, kind: str, **options: Any) -> Any:
    body: dict[str, Any] = {"tag": tag, "name": tag.title(), "type": kind}
    return api.post(f"/lists/{list_id}/merge-fields", {**body, "options": options})


def put(api: Api, list_id: str, **merge_fields: Any) -> Any:
    body = {"email_address": EMAIL, "status_if_new": "subscribed", "merge_fields": merge_fields}
    return api.put(member_path(list_id, EMAIL), body)


def refused_field(response: Any) -> dict[str, str]:
    body = assert_problem(response, 400, "Invalid Resource")
    assert body["detail"] == "Your merge fields were invalid."
    return {e["field"]: e["message"] for e in body["errors"]}


@pytest.mark.parametrize(
    ("kind", "options", "good", "bad", "message"),
    [
        ("date", {"date_format": "MM/DD/YYYY"}, "03/15/2024", "15/03/2024", "MM/DD/YYYY"),
        ("date", {"date_format": "DD/MM/YYYY"}, "15/03/2024", "03/15/2024", "DD/MM/YYYY"),
        ("date", {"date_format": "MM/DD/YYYY"}, "2024-03-15", "2024-02-30", "MM/DD/YYYY"),
        ("birthday", {"date_format": "MM/DD"}, "02/29", "29/02", "MM/DD"),
        ("number", {}, "-12.5", "12 people", "Please enter a number"),
        ("dropdown", {"choices": ["New", "VIP"]}, "VIP", "Partner", "one of the options"),
        ("radio", {"choices": ["Email"]}, "Email", "SMS", "one of the options"),
        ("url", {}, "https://acme.example/", "acme dot example", "valid URL"),
        ("phone", {"phone_format": "US"}, "(512) 555-0100", "+49 30 1234567", "US phone"),
    ],
)
def test_a_value_is_taken_in_its_merge_fields_format_and_refused_otherwise(
    sandbox, kind, options, good, bad, message
):
    app, api, list_id = sandbox
    assert create(api, list_id, "F", kind, **options).status_code == 200
    assert message in refused_field(put(api, list_id, F=bad))["F"]
    assert app.member(list_id, EMAIL) is None  # a refused value writes nothing
    assert put(api, list_id, F=good).status_code == 200
    assert app.member(list_id, EMAIL)["merge_fields"]["F"] == good


def test_an_empty_string_clears_any_merge_field(sandbox):
    app, api, list_id = sandbox
    create(api, list_id, "F", "number")
    put(api, list_id, F="7")
    assert put(api, list_id, F="").status_code == 200
    assert app.member(list_id, EMAIL)["merge_fields"]["F"] == ""


def test_a_text_value_too_long_is_cut_at_255_bytes_not_refused(sandbox):
    app, api, list_id = sandbox
    assert put(api, list_id, FNAME="é" * 200).status_code == 200
    assert app.member(list_id, EMAIL)["merge_fields"]["FNAME"] == "é" * 127


def test_a_merge_field_is_created_with_its_options_and_listed_with_them(sandbox):
    _, api, list_id = sandbox
    made = create(api, list_id, "BDAY", "birthday", date_format="MM/DD").json()
    listed = api.get(f"/lists/{list_id}/merge-fields", count=1000).json()
    assert listed["total_items"] == 5
    assert next(f for f in listed["merge_fields"] if f["tag"] == "BDAY") == made
    assert (made["type"], made["options"], made["public"]) == (
        "birthday",
        {"date_format": "MM/DD"},
        False,
    )


def test_patching_a_dropdowns_choices_replaces_the_list(sandbox):
    app, api, list_id = sandbox
    merge_id = create(api, list_id, "TYPE", "dropdown", choices=["New"]).json()["merge_id"]
    body = {"name": "Type", "options": {"choices": ["New", "VIP"]}}
    response = api.patch(f"/lists/{list_id}/merge-fields/{merge_id}", body)
    assert response.status_code == 200 and response.json()["options"]["choices"] == ["New", "VIP"]
    assert put(api, list_id, TYPE="VIP").status_code == 200
    assert_problem(api.patch(f"/lists/{list_id}/merge-fields/999", body), 404, "Resource Not Found")
    no_name = api.patch(f"/lists/{list_id}/merge-fields/{merge_id}", {"options": {}})
    assert_problem(no_name, 400, "Invalid Resource")


def test_the_audience_refuses_a_merge_field_past_its_limit(sandbox):
    app, api, list_id = sandbox
    assert create(api, list_id, "F5", "text").status_code == 200
    assert create(api, list_id, "F6", "text").status_code == 200
    refused = assert_problem(create(api, list_id, "F7", "text"), 400, "Invalid Resource")
    assert "maximum of 6 merge fields" in refused["detail"]
    assert app.merge_field(list_id, "F7") is None
