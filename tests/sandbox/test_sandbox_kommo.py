"""The Kommo sandbox behaves like Kommo API v4 over real HTTP (paging, quirks, limits, errors)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.seed import mutate_fraction, seed_account
from kommo_sync.sandbox.server import SandboxServer

TOKEN = "sandbox-kommo-token"


class Api:
    """HTTP to the sandbox; advances the fake clock per call so the rate limit stays quiet."""

    def __init__(self, url: str, clock: FakeClock):
        self.url, self.clock = url, clock
        self.session = requests.Session()

    def call(
        self, method: str, path: str, *, pace: float = 0.2, token: str | None = TOKEN, **kwargs: Any
    ) -> requests.Response:
        self.clock.advance(pace)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.session.request(
            method, f"{self.url}/api/v4{path}", headers=headers, timeout=5, **kwargs
        )

    def get(self, path: str, params: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, params=params, **kwargs)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.call("POST", path, json=body)

    def patch(self, path: str, body: Any) -> requests.Response:
        return self.call("PATCH", path, json=body)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> KommoSandbox:
    return KommoSandbox(clock, block_after=3)


@pytest.fixture
def api(sandbox: KommoSandbox, clock: FakeClock) -> Iterator[Api]:
    with SandboxServer(sandbox) as server:
        yield Api(server.url, clock)


@pytest.fixture
def sales(sandbox: KommoSandbox) -> int:
    return sandbox.add_pipeline("Sales", ["Qualified", "Proposal"], is_main=True)


def add_contacts(sandbox: KommoSandbox, count: int) -> list[int]:
    return [
        sandbox.add_contact(f"Person{n}", "Test", email=f"p{n}@example.org") for n in range(count)
    ]


def field(contact: dict[str, Any], code_or_name: str) -> dict[str, Any] | None:
    return next(
        (
            f
            for f in contact["custom_fields_values"] or []
            if code_or_name in (f["field_code"], f["field_name"])
        ),
        None,
    )


# ---- auth, errors, limits -----------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong"])
def test_missing_or_wrong_token_is_401_problem(api: Api, token: str | None) -> None:
    response = api.get("/contacts", token=token)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == {
        "title": "Unauthorized",
        "type": "https://httpstatus.es/401",
        "status": 401,
        "detail": "Invalid user name or password",
    }


def test_unknown_path_is_404_problem(api: Api) -> None:
    response = api.get("/nothing/here")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["title"] == "Not Found"
    assert response.json()["detail"].startswith("Cannot GET http://127.0.0.1:")


def test_eighth_request_in_a_second_is_429_with_retry_after_in_body(api: Api) -> None:
    statuses = [api.get("/contacts", pace=0.01).status_code for _ in range(8)]
    assert statuses[:7] == [204] * 7
    assert statuses[7] == 429
    response = api.get("/contacts", pace=0.0)
    assert response.json()["retry_after"] == 1
    assert response.headers["Content-Type"] == "application/problem+json"
    assert "Retry-After" not in response.headers
    assert api.get("/contacts", pace=1.0).status_code == 204


def test_repeated_429s_block_the_ip_until_unblocked(api: Api, sandbox: KommoSandbox) -> None:
    sandbox.fail_next(3, 429)
    assert [api.get("/contacts").status_code for _ in range(3)] == [429] * 3
    blocked = api.get("/contacts", pace=5.0)
    assert blocked.status_code == 403
    assert blocked.text == "403 Forbidden"
    assert blocked.headers["Content-Type"].startswith("text/html")
    assert sandbox.blocked
    sandbox.unblock()
    assert api.get("/contacts").status_code == 204


def test_a_success_between_429s_resets_the_block_count(api: Api, sandbox: KommoSandbox) -> None:
    for _ in range(2):
        sandbox.fail_next(2, 429)
        assert [api.get("/contacts").status_code for _ in range(3)] == [429, 429, 204]
    assert not sandbox.blocked


def test_fail_next_injects_server_errors(api: Api, sandbox: KommoSandbox) -> None:
    sandbox.fail_next(1, 500)
    sandbox.fail_next(1, 504)
    first, second = api.get("/contacts"), api.get("/contacts")
    assert first.status_code == 500 and first.json()["title"] == "ErrInternalServer"
    assert second.status_code == 504 and "Gateway" in second.text
    assert api.get("/contacts").status_code == 204


# ---- contacts -----------------------------------------------------------------------------


def test_contacts_page_with_next_link_even_on_last_page(api: Api, sandbox: KommoSandbox) -> None:
    add_contacts(sandbox, 120)
    sizes = []
    for page in (1, 2, 3):
        response = api.get("/contacts", {"page": page})
        assert response.headers["Content-Type"] == "application/hal+json"
        body = response.json()
        assert body["_page"] == page and "next" in body["_links"]
        sizes.append(len(body["_embedded"]["contacts"]))
    assert sizes == [50, 50, 20]
    past_end = api.get("/contacts", {"page": 4})
    assert past_end.status_code == 204 and past_end.content == b""
    assert "Content-Type" not in past_end.headers


def test_limit_over_250_silently_falls_back_to_50(api: Api, sandbox: KommoSandbox) -> None:
    add_contacts(sandbox, 300)
    assert len(api.get("/contacts", {"limit": 250}).json()["_embedded"]["contacts"]) == 250
    assert len(api.get("/contacts", {"limit": 300}).json()["_embedded"]["contacts"]) == 50


def test_next_link_carries_filters_and_limit(api: Api, sandbox: KommoSandbox) -> None:
    add_contacts(sandbox, 3)
    body = api.get("/contacts", {"limit": 2, "order[id]": "desc"}).json()
    following = requests.get(
        body["_links"]["next"]["href"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    pages = body["_embedded"]["contacts"] + following.json()["_embedded"]["contacts"]
    ids = [contact["id"] for contact in pages]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3


def test_contact_shape(api: Api, sandbox: KommoSandbox) -> None:
    company = sandbox.add_company("United")
    bare = sandbox.add_contact("Sam")
    full = sandbox.add_contact(
        "Ann",
        "Lee",
        email="ann@x.org",
        phone="+49 30 1234567",
        company_id=company,
        consent=True,
        lead_source="Website",
    )
    contacts = {c["id"]: c for c in api.get("/contacts").json()["_embedded"]["contacts"]}
    assert contacts[bare]["custom_fields_values"] is None
    assert contacts[bare]["_embedded"] == {"tags": [], "companies": []}
    ann = contacts[full]
    assert ann["name"] == "Ann Lee" and ann["account_id"] and ann["is_deleted"] is False
    assert field(ann, "EMAIL")["field_type"] == "multitext"
    assert field(ann, "EMAIL")["values"][0]["value"] == "ann@x.org"
    assert field(ann, "PHONE")["values"][0]["value"] == "+49 30 1234567"
    assert field(ann, "Email consent")["values"] == [{"value": True}]
    assert field(ann, "Lead source")["values"] == [{"value": "Website"}]
    assert [c["id"] for c in ann["_embedded"]["companies"]] == [company]
    assert ann["_links"]["self"]["href"].endswith(f"/api/v4/contacts/{full}")


def test_unchecked_consent_is_absent_and_enum_key_alternates(
    api: Api, sandbox: KommoSandbox
) -> None:
    sandbox.add_contact("A", email="a@x.org", consent=False)
    sandbox.add_contact("B", email="b@x.org", consent=None)
    contacts = api.get("/contacts").json()["_embedded"]["contacts"]
    assert all(field(c, "Email consent") is None for c in contacts)
    enum_keys = {
        frozenset(set(field(c, "EMAIL")["values"][0]) & {"enum", "enum_code"}) for c in contacts
    }
    assert enum_keys == {frozenset({"enum"}), frozenset({"enum_code"})}


def test_update_contact_bumps_updated_at_and_filters_are_inclusive(
    api: Api, sandbox: KommoSandbox, clock: FakeClock
) -> None:
    old, changed = add_contacts(sandbox, 2)
    start = int(clock.now())
    clock.advance(100)
    sandbox.update_contact(changed, phone="030 1234567")
    moment = int(clock.now())
    window = {"filter[updated_at][from]": moment, "filter[updated_at][to]": moment}
    assert [c["id"] for c in api.get("/contacts", window).json()["_embedded"]["contacts"]] == [
        changed
    ]
    ordered = api.get("/contacts", {"order[updated_at]": "desc"}).json()["_embedded"]["contacts"]
    assert [c["id"] for c in ordered] == [changed, old]
    assert sandbox.contact(old)["updated_at"] == start


def test_filter_by_id_in_array_and_plain_forms(api: Api, sandbox: KommoSandbox) -> None:
    first, second, third = add_contacts(sandbox, 3)
    arrays = api.get("/contacts", {"filter[id][]": [first, third]}).json()
    plain = api.get("/contacts", {"filter[id]": second}).json()
    assert [c["id"] for c in arrays["_embedded"]["contacts"]] == [first, third]
    assert [c["id"] for c in plain["_embedded"]["contacts"]] == [second]


def test_query_searches_names_and_field_values_case_insensitively(
    api: Api, sandbox: KommoSandbox
) -> None:
    wanted = sandbox.add_contact("Jo", "Doe", email="John.Doe@Example.com")
    sandbox.add_contact("Other", email="other@example.com")
    found = api.get("/contacts", {"query": "john.doe@example.COM"}).json()
    assert [c["id"] for c in found["_embedded"]["contacts"]] == [wanted]
    assert api.get("/contacts", {"query": "nobody@nowhere"}).status_code == 204


def test_with_leads_embeds_leads_without_bumping_contact(
    api: Api, sandbox: KommoSandbox, sales: int, clock: FakeClock
) -> None:
    contact = sandbox.add_contact("Kim")
    before = sandbox.contact(contact)["updated_at"]
    clock.advance(60)
    lead = sandbox.add_lead("Deal", 100, sales, contact_ids=[contact])
    body = api.get("/contacts", {"with": "leads"}).json()["_embedded"]["contacts"][0]
    assert [item["id"] for item in body["_embedded"]["leads"]] == [lead]
    assert body["updated_at"] == before
    assert "leads" not in api.get("/contacts").json()["_embedded"]["contacts"][0]["_embedded"]


def test_patch_contacts_clears_consent(api: Api, sandbox: KommoSandbox, clock: FakeClock) -> None:
    contact = sandbox.add_contact("Pat", email="pat@x.org", consent=True)
    response = api.patch(
        "/contacts",
        [
            {
                "id": contact,
                "custom_fields_values": [
                    {"field_id": sandbox.consent_field_id, "values": [{"value": False}]}
                ],
            }
        ],
    )
    assert response.status_code == 200
    assert response.json()["_embedded"]["contacts"][0]["id"] == contact
    assert not sandbox.consent(contact)
    assert field(sandbox.contact(contact), "Email consent") is None
    assert sandbox.contact(contact)["updated_at"] == int(clock.now())


def test_patch_contacts_rejects_the_whole_batch_on_one_bad_item(
    api: Api, sandbox: KommoSandbox
) -> None:
    contact = sandbox.add_contact("Pat", consent=True)
    response = api.patch(
        "/contacts",
        [
            {
                "id": contact,
                "custom_fields_values": [
                    {"field_id": sandbox.consent_field_id, "values": [{"value": False}]}
                ],
            },
            {"id": 1, "custom_fields_values": [{"field_id": 999, "values": []}]},
        ],
    )
    assert response.status_code == 400
    errors = response.json()["validation-errors"]
    assert errors[0]["request_id"] == "1"
    assert {e["path"] for e in errors[0]["errors"]} == {"id", "custom_fields_values.0.field_id"}
    assert sandbox.consent(contact)


# ---- leads, pipelines, companies, custom fields -------------------------------------------


def test_leads_with_contacts_and_pipeline_filter(
    api: Api, sandbox: KommoSandbox, sales: int
) -> None:
    partners = sandbox.add_pipeline("Partners", ["Intro"], unsorted=False)
    main, other = sandbox.add_contact("Main"), sandbox.add_contact("Other")
    lead = sandbox.add_lead("Deal", 500, sales, contact_ids=[other, main], main_contact_id=main)
    sandbox.add_lead("Elsewhere", 1, partners)
    body = api.get("/leads", {"with": "contacts", "filter[pipeline_id][]": sales}).json()
    (item,) = body["_embedded"]["leads"]
    assert item["id"] == lead and item["status_id"] == sandbox.statuses(sales)[0]["id"]
    assert [(c["id"], c["is_main"]) for c in item["_embedded"]["contacts"]] == [
        (main, True),
        (other, False),
    ]


def test_moving_to_won_sets_closed_at(
    api: Api, sandbox: KommoSandbox, sales: int, clock: FakeClock
) -> None:
    lead = sandbox.add_lead("Deal", 500, sales)
    clock.advance(30)
    sandbox.move_lead(lead, 142)
    item = api.get(f"/leads/{lead}").json()
    assert item["status_id"] == 142 and item["closed_at"] == int(clock.now())
    assert item["updated_at"] == item["closed_at"]


def test_pipelines_have_system_statuses(api: Api, sandbox: KommoSandbox, sales: int) -> None:
    partners = sandbox.add_pipeline("Partners", ["Intro", "Contract"], unsorted=False)
    body = api.get("/leads/pipelines").json()
    assert body["_total_items"] == 2
    pipelines = {p["id"]: p for p in body["_embedded"]["pipelines"]}
    sales_statuses = pipelines[sales]["_embedded"]["statuses"]
    assert [(s["name"], s["type"]) for s in sales_statuses] == [
        ("Incoming leads", 1),
        ("Qualified", 0),
        ("Proposal", 0),
        ("Closed - won", 0),
        ("Closed - lost", 0),
    ]
    partner_ids = [s["id"] for s in pipelines[partners]["_embedded"]["statuses"]]
    assert partner_ids[-2:] == [142, 143] and len(partner_ids) == 4
    assert len({s["id"] for s in sales_statuses[:3]} | set(partner_ids[:2])) == 5
    assert pipelines[sales]["is_main"] and not pipelines[partners]["is_unsorted_on"]


def test_companies_bulk_by_id(api: Api, sandbox: KommoSandbox) -> None:
    ids = [sandbox.add_company(f"Firm {n}") for n in range(5)]
    body = api.get("/companies", {"filter[id][]": ids[1:3], "limit": 250}).json()
    assert [(c["id"], c["name"]) for c in body["_embedded"]["companies"]] == [
        (ids[1], "Firm 1"),
        (ids[2], "Firm 2"),
    ]
    assert api.get("/companies", {"filter[id][]": [1]}).status_code == 204


def test_custom_fields_need_two_pages(api: Api, sandbox: KommoSandbox) -> None:
    first = api.get("/contacts/custom_fields").json()
    second = api.get("/contacts/custom_fields", {"page": 2}).json()
    assert len(first["_embedded"]["custom_fields"]) == 50 and "next" in second["_links"]
    fields = first["_embedded"]["custom_fields"] + second["_embedded"]["custom_fields"]
    by_name = {f["name"]: f for f in fields}
    assert by_name["Email"]["code"] == "EMAIL" and by_name["Email"]["type"] == "multitext"
    assert by_name["Phone"]["code"] == "PHONE"
    assert by_name["Email consent"]["type"] == "checkbox"
    assert by_name["Email consent"] in second["_embedded"]["custom_fields"]
    assert api.get("/contacts/custom_fields", {"page": 3}).status_code == 204


# ---- events -------------------------------------------------------------------------------


def make_history(sandbox: KommoSandbox, clock: FakeClock, pipeline: int) -> list[int]:
    leads = [sandbox.add_lead(f"L{n}", 10, pipeline) for n in range(3)]
    clock.advance(10)
    sandbox.move_lead(leads[0], 142)
    clock.advance(10)
    sandbox.move_lead(leads[1], 143)
    return leads


def test_events_types_shapes_and_order(
    api: Api, sandbox: KommoSandbox, sales: int, clock: FakeClock
) -> None:
    leads = make_history(sandbox, clock, sales)
    events = api.get("/events").json()["_embedded"]["events"]
    assert [e["type"] for e in events] == ["lead_added"] * 3 + ["lead_status_changed"] * 2
    ids = [e["id"] for e in events]
    assert all(isinstance(i, str) and len(i) == 26 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == 5
    won = events[3]
    assert won["entity_id"] == leads[0] and won["entity_type"] == "lead"
    incoming = sandbox.statuses(sales)[0]["id"]
    assert won["value_before"] == [{"lead_status": {"id": incoming, "pipeline_id": sales}}]
    assert won["value_after"] == [{"lead_status": {"id": 142, "pipeline_id": sales}}]


def test_events_filters_in_both_forms(
    api: Api, sandbox: KommoSandbox, sales: int, clock: FakeClock
) -> None:
    start = int(clock.now())
    leads = make_history(sandbox, clock, sales)
    comma = api.get("/events", {"filter[type]": "lead_status_changed,lead_deleted"}).json()
    array = api.get("/events", {"filter[type][]": ["lead_status_changed"]}).json()
    assert len(comma["_embedded"]["events"]) == len(array["_embedded"]["events"]) == 2
    ranged = api.get(
        "/events", {"filter[created_at][from]": start + 10, "filter[created_at][to]": start + 10}
    ).json()
    assert [e["entity_id"] for e in ranged["_embedded"]["events"]] == [leads[0]]
    comma_range = api.get("/events", {"filter[created_at]": f"{start + 20},{start + 20}"}).json()
    assert [e["entity_id"] for e in comma_range["_embedded"]["events"]] == [leads[1]]
    by_entity = api.get(
        "/events", {"filter[entity][]": "lead", "filter[entity_id][]": leads[2]}
    ).json()
    assert [e["type"] for e in by_entity["_embedded"]["events"]] == ["lead_added"]


def test_events_limit_caps_at_100(api: Api, sandbox: KommoSandbox, sales: int) -> None:
    for n in range(120):
        sandbox.add_lead(f"L{n}", 1, sales)
    assert len(api.get("/events", {"limit": 250}).json()["_embedded"]["events"]) == 100
    assert len(api.get("/events", {"page": 2}).json()["_embedded"]["events"]) == 20


# ---- notes --------------------------------------------------------------------------------


def test_post_notes_echoes_request_ids_and_stores(api: Api, sandbox: KommoSandbox) -> None:
    contact = sandbox.add_contact("Noted")
    response = api.post(
        "/contacts/notes",
        [
            {"entity_id": contact, "note_type": "common", "params": {"text": "Unsubscribed"}},
            {
                "entity_id": contact,
                "note_type": "common",
                "params": {"text": "Again"},
                "request_id": "k-2",
            },
        ],
    )
    assert response.status_code == 200
    notes = response.json()["_embedded"]["notes"]
    assert [(n["entity_id"], n["request_id"]) for n in notes] == [(contact, "0"), (contact, "k-2")]
    assert [n["params"]["text"] for n in sandbox.notes] == ["Unsubscribed", "Again"]
    assert sandbox.notes[0]["entity_type"] == "contacts"
    listed = api.get(
        "/contacts/notes", {"filter[entity_id][]": contact, "filter[note_type]": "common"}
    ).json()
    assert len(listed["_embedded"]["notes"]) == 2
    assert api.get("/leads/notes").status_code == 204


def test_invalid_note_rejects_whole_batch(api: Api, sandbox: KommoSandbox) -> None:
    contact = sandbox.add_contact("Noted")
    response = api.post(
        "/contacts/notes",
        [
            {"entity_id": contact, "note_type": "common", "params": {"text": "fine"}},
            {"entity_id": 1, "note_type": "common", "params": {"text": "unknown entity"}},
            {"entity_id": contact, "note_type": "common", "params": {}},
        ],
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    errors = {e["request_id"]: e["errors"][0] for e in response.json()["validation-errors"]}
    assert errors["1"]["code"] == "NotFound" and errors["1"]["path"] == "entity_id"
    assert errors["2"]["path"] == "params.text"
    assert sandbox.notes == []


def test_more_than_250_notes_is_422(api: Api, sandbox: KommoSandbox, sales: int) -> None:
    lead = sandbox.add_lead("Deal", 1, sales)
    note = {"entity_id": lead, "note_type": "common", "params": {"text": "x"}}
    response = api.post("/leads/notes", [note] * 251)
    assert response.status_code == 422
    assert response.json()["detail"] == "Limit 250 per page"
    assert api.post("/leads/notes", [note] * 250).status_code == 200


# ---- seed ---------------------------------------------------------------------------------


def test_seed_is_deterministic_and_realistic() -> None:
    first, second = KommoSandbox(FakeClock()), KommoSandbox(FakeClock())
    info = seed_account(first, 2000, seed=3)
    seed_account(second, 2000, seed=3)
    assert [c["name"] for c in first.contacts.values()] == [
        c["name"] for c in second.contacts.values()
    ]
    emails = [first.field_texts(c, first.email_field_id) for c in info.contact_ids]
    with_email = sum(1 for e in emails if e)
    assert 0.85 < with_email / 2000 < 0.95
    assert 0.55 < len(info.consented_contact_ids) / 2000 < 0.65
    assert info.shared_email_contact_ids
    assert any(e and e[0] != e[0].strip() for e in emails)
    statuses = {lead["status_id"] for lead in first.leads.values()}
    assert {142, 143} <= statuses and len(statuses) > 4
    assert any(len(lead["contact_ids"]) == 2 for lead in first.leads.values())
    assert len(info.company_ids) == 400


def test_seed_fills_a_large_account_to_the_sizes_asked() -> None:
    """Seeding 20,000 contacts is one call that builds them all (its speed is a benchmark figure:
    benchmarks/sandbox_timing.py)."""
    sandbox = KommoSandbox(FakeClock())
    info = seed_account(sandbox, 20_000)
    assert (len(info.contact_ids), len(sandbox.contacts)) == (20_000, 20_000)
    assert (len(info.company_ids), len(sandbox.companies)) == (4_000, 4_000)
    assert all(
        set(lead["contact_ids"]) <= sandbox.contacts.keys() for lead in sandbox.leads.values()
    )


def test_mutate_fraction_bumps_contacts_deterministically() -> None:
    clock = FakeClock()
    sandboxes = [KommoSandbox(clock), KommoSandbox(clock)]
    for sandbox in sandboxes:
        seed_account(sandbox, 1000)
    clock.advance(3600)
    changed = [mutate_fraction(sandbox, 0.05, seed=5) for sandbox in sandboxes]
    assert changed[0] == changed[1] and len(changed[0]) == 50
    bumped = [c for c in changed[0] if sandboxes[0].contact(c)["updated_at"] == int(clock.now())]
    assert len(bumped) > 25
