"""The Kommo sandbox's deletions, restores and merges, and their events as Kommo reports them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.server import SandboxServer
from tests.sandbox.test_sandbox_kommo import Api


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> KommoSandbox:
    return KommoSandbox(clock)


@pytest.fixture
def api(sandbox: KommoSandbox, clock: FakeClock) -> Iterator[Api]:
    with SandboxServer(sandbox) as server:
        yield Api(server.url, clock)


@pytest.fixture
def sales(sandbox: KommoSandbox) -> int:
    return sandbox.add_pipeline("Sales", ["Qualified"], is_main=True)


def events(api: Api, *types: str) -> list[dict[str, Any]]:
    response = api.get("/events", {"filter[type]": ",".join(types)})
    return response.json()["_embedded"]["events"] if response.status_code == 200 else []


def listed(api: Api, path: str, params: Any = None) -> list[int]:
    response = api.get(path, params)
    key = path.strip("/")
    return (
        [r["id"] for r in response.json()["_embedded"][key]] if response.status_code == 200 else []
    )


def emails(contact: dict[str, Any]) -> list[str]:
    fields = contact["custom_fields_values"] or []
    entry = next(f for f in fields if f["field_code"] == "EMAIL")
    return [v["value"] for v in entry["values"]]


def test_a_deleted_contact_is_not_listed_nor_returned_and_its_event_is_as_kommo_reports_it(
    api: Api, sandbox: KommoSandbox
) -> None:
    kept = sandbox.add_contact("Ann", email="ann@example.org")
    gone = sandbox.add_contact("Bob", email="bob@example.org")
    sandbox.delete_contact(gone, at=1_700_000_000)
    assert listed(api, "/contacts") == [kept]
    assert api.get(f"/contacts/{gone}").status_code == 204
    [event] = events(api, "contact_deleted")
    assert isinstance(event["id"], str)
    assert {k: event[k] for k in ("type", "entity_id", "entity_type", "created_at")} == {
        "type": "contact_deleted",
        "entity_id": gone,
        "entity_type": "contact",
        "created_at": 1_700_000_000,
    }
    assert (event["value_before"], event["value_after"]) == ([], [])
    assert event["_embedded"]["entity"]["_links"]["self"]["href"].endswith(f"/contacts/{gone}")


def test_a_restored_contact_is_back_with_its_leads(
    api: Api, sandbox: KommoSandbox, sales: int
) -> None:
    contact = sandbox.add_contact("Ann", email="ann@example.org")
    lead = sandbox.add_lead("Deal", 100, sales, contact_ids=[contact])
    sandbox.delete_contact(contact)
    assert sandbox.lead(lead)["contact_ids"] == []
    sandbox.restore_contact(contact)
    assert listed(api, "/contacts") == [contact]
    assert sandbox.lead(lead)["main_contact_id"] == contact
    assert [e["entity_id"] for e in events(api, "contact_restored")] == [contact]


def test_a_deleted_lead_is_listed_only_with_only_deleted_and_leaves_its_contacts(
    api: Api, sandbox: KommoSandbox, sales: int
) -> None:
    contact = sandbox.add_contact("Ann", email="ann@example.org")
    kept = sandbox.add_lead("Kept", 100, sales, contact_ids=[contact])
    gone = sandbox.add_lead("Gone", 200, sales, contact_ids=[contact])
    sandbox.delete_lead(gone)
    assert listed(api, "/leads") == [kept]
    assert api.get(f"/leads/{gone}").status_code == 204
    trashed = api.get("/leads", {"with": "only_deleted"}).json()["_embedded"]["leads"]
    assert [(t["id"], t["is_deleted"]) for t in trashed] == [(gone, True)]
    assert sandbox.contact(contact)["lead_ids"] == [kept]
    [event] = events(api, "lead_deleted")
    assert (event["entity_id"], event["entity_type"], event["value_after"]) == (gone, "lead", [])


def test_a_restored_lead_is_listed_again_with_its_contacts(
    api: Api, sandbox: KommoSandbox, sales: int
) -> None:
    contact = sandbox.add_contact("Ann", email="ann@example.org")
    lead = sandbox.add_lead("Deal", 100, sales, contact_ids=[contact])
    sandbox.delete_lead(lead)
    sandbox.restore_lead(lead)
    assert listed(api, "/leads") == [lead]
    assert listed(api, "/leads", {"with": "only_deleted"}) == []
    assert sandbox.contact(contact)["lead_ids"] == [lead]
    assert [e["type"] for e in events(api, "lead_deleted", "lead_restored")] == [
        "lead_deleted",
        "lead_restored",
    ]


@pytest.mark.parametrize("named", ["survivor", "loser"])
def test_a_merge_moves_emails_and_leads_and_names_either_side(
    api: Api, sandbox: KommoSandbox, sales: int, named: str
) -> None:
    survivor = sandbox.add_contact("Ann", email="ann@example.org")
    loser = sandbox.add_contact("Ann", email="ann@work.example.org")
    lead = sandbox.add_lead("Deal", 100, sales, contact_ids=[loser])
    sandbox.merge_contacts(survivor, loser, named=survivor if named == "survivor" else loser)
    assert listed(api, "/contacts") == [survivor]
    assert api.get(f"/contacts/{loser}").status_code == 204
    assert emails(api.get(f"/contacts/{survivor}").json()) == [
        "ann@example.org",
        "ann@work.example.org",
    ]
    assert sandbox.lead(lead)["main_contact_id"] == survivor
    [event] = events(api, "entity_merged")
    assert event["entity_id"] == (survivor if named == "survivor" else loser)
    assert (event["entity_type"], event["value_before"], event["value_after"]) == (
        "contact",
        [],
        [],
    )


def test_lifecycle_events_do_not_show_in_lead_event_reads(api: Api, sandbox: KommoSandbox) -> None:
    contact = sandbox.add_contact("Ann", email="ann@example.org")
    sandbox.delete_contact(contact)
    response = api.get("/events", {"filter[type]": "lead_added,lead_status_changed"})
    assert response.status_code == 204
