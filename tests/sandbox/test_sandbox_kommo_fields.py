"""The Kommo sandbox serves custom fields of contacts, leads and companies, their values on
records (set, changed, cleared) and companies, as Kommo API v4 does, over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.kommo.field_types import FIELDS, SAMPLES, field_value
from tests.sandbox import test_sandbox_kommo as base
from tests.sandbox.test_sandbox_kommo import Api

# The Kommo sandbox tests' fixtures, shared rather than copied.
clock, sandbox, api = base.clock, base.sandbox, base.api

ALL_TYPES = [
    *("text", "textarea", "numeric", "price", "monetary", "checkbox", "select", "radiobutton"),
    *("multiselect", "multitext", "date", "date_time", "birthday", "url", "streetaddress"),
    *("smart_address", "legal_entity", "category", "chained_list", "tracking_data", "items"),
    *("linked_entity", "file"),
]
CHOICES = {
    *("select", "radiobutton", "multiselect", "multitext", "smart_address", "legal_entity"),
    "category",
}


def listed(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(path, params)
    return response.json()["_embedded"][path.rsplit("/", 1)[-1]] if response.text else []


def add_record(sandbox: KommoSandbox, entity: str, sales: int | None = None) -> int:
    if entity == "contacts":
        return sandbox.add_contact("Ada", "Lovelace")
    if entity == "leads":
        return sandbox.add_lead("Deal", 100, sales or sandbox.add_pipeline("Sales", ["New"]))
    return sandbox.add_company("Acme")


def fetched(api: Api, entity: str, record_id: int) -> dict[str, Any]:
    return api.get(f"/{entity}/{record_id}").json()


def in_window(api: Api, entity: str, low: int, high: int) -> list[int]:
    window = {"filter[updated_at][from]": low, "filter[updated_at][to]": high}
    return [r["id"] for r in listed(api, f"/{entity}", **window)]


# ---- field definitions -------------------------------------------------------------------


@pytest.mark.parametrize("entity", ["leads", "companies"])
def test_lead_and_company_fields_are_their_own_paged_list(
    api: Api, sandbox: KommoSandbox, entity: str
) -> None:
    assert api.get(f"/{entity}/custom_fields").status_code == 204
    ids = [sandbox.add_custom_field(f"F{n}", "text", entity=entity) for n in range(3)]
    first = api.get(f"/{entity}/custom_fields", {"limit": 2}).json()
    second = api.get(f"/{entity}/custom_fields", {"limit": 2, "page": 2}).json()
    fields = first["_embedded"]["custom_fields"] + second["_embedded"]["custom_fields"]
    assert [f["id"] for f in fields] == ids
    assert {f["entity_type"] for f in fields} == {entity}
    assert fields[0]["_links"]["self"]["href"].endswith(f"/api/v4/{entity}/custom_fields/{ids[0]}")
    assert "next" in second["_links"] and second["_page"] == 2
    assert api.get(f"/{entity}/custom_fields", {"limit": 2, "page": 3}).status_code == 204
    contact_ids = {f["id"] for f in listed(api, "/contacts/custom_fields", limit=250)}
    assert not contact_ids & set(ids)


def test_contact_fields_keep_their_first_page_and_gain_new_ones(
    api: Api, sandbox: KommoSandbox
) -> None:
    before = listed(api, "/contacts/custom_fields")
    added = sandbox.add_custom_field("Shoe size", "numeric")
    after = listed(api, "/contacts/custom_fields", limit=250)
    assert listed(api, "/contacts/custom_fields") == before
    assert after[-1]["id"] == added and after[-1]["entity_type"] == "contacts"
    assert len(after) == len(before) + len(listed(api, "/contacts/custom_fields", page=2))


def test_a_field_of_each_of_the_23_types_with_enums_only_on_choice_types(
    api: Api, sandbox: KommoSandbox
) -> None:
    for kind in ALL_TYPES:
        options = ("One", "Two") if kind in CHOICES else ()
        sandbox.add_custom_field(f"A {kind}", kind, enum_values=options, entity="leads")
    fields = {f["type"]: f for f in listed(api, "/leads/custom_fields", limit=250)}
    assert sorted(fields) == sorted(ALL_TYPES)
    for kind, field in fields.items():
        enums = field["enums"]
        if kind in CHOICES:
            assert [(e["value"], e["sort"]) for e in enums] == [("One", 2), ("Two", 4)]
            assert all(isinstance(e["id"], int) for e in enums)
        else:
            assert enums is None, kind
    keys = {"id", "name", "code", "sort", "type", "entity_type", "is_predefined", "enums"}
    assert keys <= set(fields["text"])


def test_unknown_types_and_enums_on_plain_types_are_refused(sandbox: KommoSandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.add_custom_field("X", "color")
    with pytest.raises(ValueError):
        sandbox.add_custom_field("X", "text", enum_values=["a"])
    with pytest.raises(ValueError):
        sandbox.add_custom_field("X", "text", entity="customers")


def test_extra_definition_keys_are_served(api: Api, sandbox: KommoSandbox) -> None:
    nested = [{"id": 1, "parent_id": None, "value": "Shoes", "sort": 0}]
    sandbox.add_custom_field("Kind", "category", entity="leads", extra={"nested": nested})
    sandbox.add_custom_field("Budget", "monetary", entity="leads", extra={"currency": "EUR"})
    fields = {f["name"]: f for f in listed(api, "/leads/custom_fields")}
    assert fields["Kind"]["nested"] == nested and fields["Budget"]["currency"] == "EUR"


def test_an_enum_added_later_is_listed_with_a_new_id(api: Api, sandbox: KommoSandbox) -> None:
    field_id = sandbox.add_custom_field("Tier", "select", enum_values=["Gold"], entity="companies")
    gold = listed(api, "/companies/custom_fields")[0]["enums"][0]
    silver = sandbox.add_enum(field_id, "Silver")
    enums = listed(api, "/companies/custom_fields")[0]["enums"]
    assert enums == [gold, {"id": silver, "value": "Silver", "sort": gold["sort"] + 2}]
    with pytest.raises(ValueError):
        sandbox.add_enum(sandbox.lead_source_field_id, "Radio")


def test_filter_by_type_works_for_every_entity(api: Api, sandbox: KommoSandbox) -> None:
    sandbox.add_custom_field("Note", "text", entity="leads")
    wanted = sandbox.add_checkbox_field("Paid", entity="leads")
    body = api.get("/leads/custom_fields", {"filter[type][0]": "checkbox"}).json()
    assert [f["id"] for f in body["_embedded"]["custom_fields"]] == [wanted]


# ---- values on records ---------------------------------------------------------------------


@pytest.mark.parametrize("entity", ["contacts", "leads", "companies"])
def test_a_value_set_changed_and_cleared_moves_updated_at(
    api: Api, sandbox: KommoSandbox, clock: FakeClock, entity: str
) -> None:
    field_id = sandbox.add_custom_field("Size", "numeric", entity=entity)
    record_id, start = add_record(sandbox, entity), int(clock.now())
    assert fetched(api, entity, record_id)["custom_fields_values"] is None
    sandbox.set_field_values(entity, record_id, field_id, [{"value": 42}], at=start + 100)
    assert fetched(api, entity, record_id)["custom_fields_values"] == [
        {
            "field_id": field_id,
            "field_name": "Size",
            "field_code": None,
            "field_type": "numeric",
            "values": [{"value": 42}],
        }
    ]
    assert in_window(api, entity, start + 100, start + 100) == [record_id]
    sandbox.set_field_values(entity, record_id, field_id, [{"value": 43}], at=start + 200)
    record = fetched(api, entity, record_id)
    assert record["updated_at"] == start + 200
    assert record["custom_fields_values"][0]["values"] == [{"value": 43}]
    sandbox.clear_field_values(entity, record_id, field_id, at=start + 300)
    record = fetched(api, entity, record_id)
    assert record["custom_fields_values"] is None and record["updated_at"] == start + 300
    assert in_window(api, entity, start + 250, start + 400) == [record_id]


def test_clearing_one_field_keeps_the_others_and_an_absent_one_changes_nothing(
    api: Api, sandbox: KommoSandbox, clock: FakeClock
) -> None:
    contact = sandbox.add_contact("Ada", email="ada@example.org")
    field_id = sandbox.add_custom_field("Colours", "multiselect", enum_values=["Red", "Blue"])
    values = [{"value": "Red", "enum_id": 1}, {"value": "Blue", "enum_id": 2}]
    sandbox.set_field_values("contacts", contact, field_id, values)
    clock.advance(60)
    sandbox.clear_field_values("contacts", contact, field_id)
    stamp = fetched(api, "contacts", contact)["updated_at"]
    clock.advance(60)
    sandbox.clear_field_values("contacts", contact, field_id)
    record = fetched(api, "contacts", contact)
    assert [f["field_code"] for f in record["custom_fields_values"]] == ["EMAIL"]
    assert record["updated_at"] == stamp == int(clock.now()) - 60


def test_values_are_stored_as_given_and_searchable_on_contacts(
    api: Api, sandbox: KommoSandbox
) -> None:
    field_id = sandbox.add_custom_field("Address", "smart_address", enum_values=["city"])
    contact = sandbox.add_contact("Ada")
    values = [{"value": "Zaragoza", "enum_id": 7, "enum_code": "city"}]
    sandbox.set_field_values("contacts", contact, field_id, values)
    assert fetched(api, "contacts", contact)["custom_fields_values"][0]["values"] == values
    assert [c["id"] for c in listed(api, "/contacts", query="zaragoza")] == [contact]


def test_values_need_a_field_of_that_entity_and_something_to_store(
    sandbox: KommoSandbox,
) -> None:
    lead_field = sandbox.add_custom_field("Size", "numeric", entity="leads")
    company = sandbox.add_company("Acme")
    with pytest.raises(KeyError):
        sandbox.set_field_values("companies", company, lead_field, [{"value": 1}])
    with pytest.raises(ValueError):
        sandbox.set_field_values("companies", company, lead_field, [])


# ---- companies -----------------------------------------------------------------------------


def test_companies_by_window_order_and_ids_with_fields_and_tags(
    api: Api, sandbox: KommoSandbox, clock: FakeClock
) -> None:
    start = int(clock.now())
    old, renamed, tagged = (sandbox.add_company(f"Firm {n}", created_at=start) for n in range(3))
    vat = sandbox.add_custom_field("VAT", "text", entity="companies")
    sandbox.update_company(renamed, name="Renamed SL", at=start + 10)
    sandbox.set_field_values("companies", tagged, vat, [{"value": "ES123"}], at=start + 20)
    sandbox.tag("companies", tagged, "partner", at=start + 20)
    window = {"filter[updated_at][from]": start + 5, "order[updated_at]": "desc"}
    body = api.get("/companies", window).json()["_embedded"]["companies"]
    assert [(c["id"], c["name"]) for c in body] == [(tagged, "Firm 2"), (renamed, "Renamed SL")]
    assert body[0]["custom_fields_values"][0]["values"] == [{"value": "ES123"}]
    assert [t["name"] for t in body[0]["_embedded"]["tags"]] == ["partner"]
    by_ids = listed(api, "/companies", **{"filter[id][]": [old, tagged]})
    assert [c["id"] for c in by_ids] == [old, tagged]
    assert by_ids[0]["_embedded"] == {"tags": []} and by_ids[0]["custom_fields_values"] is None
    assert fetched(api, "companies", renamed)["name"] == "Renamed SL"
    assert api.get("/companies/1").status_code == 204


# ---- one field of each type, as field_types.py describes them ------------------------------


def test_one_field_of_each_type_is_served_with_its_sample_values(
    api: Api, sandbox: KommoSandbox
) -> None:
    records = {entity: add_record(sandbox, entity) for entity in ("contacts", "leads", "companies")}
    ids = {}
    for kind, definition in FIELDS.items():
        entity = definition["entity_type"]
        extra = {"enums": definition["enums"]}
        ids[kind] = sandbox.add_custom_field(definition["name"], kind, entity=entity, extra=extra)
        sandbox.set_field_values(entity, records[entity], ids[kind], SAMPLES[kind][0])
    served = {
        entry["field_type"]: entry
        for entity, record_id in records.items()
        for entry in fetched(api, entity, record_id)["custom_fields_values"]
        if entry["field_id"] in ids.values()
    }
    assert served == {kind: {**field_value(kind), "field_id": ids[kind]} for kind in FIELDS}
    listed_fields = [
        field
        for entity in records
        for field in listed(api, f"/{entity}/custom_fields", limit=250)
        if field["id"] in ids.values()
    ]
    assert {f["type"]: f["enums"] for f in listed_fields} == {
        kind: definition["enums"] for kind, definition in FIELDS.items()
    }
