"""The field map to Mailchimp end to end: `mailchimp.fields` and `mailchimp.kommo_tags` through the
CLI against the Kommo and Mailchimp sandboxes."""

from __future__ import annotations

import json
from typing import Any

from kommo_sync.sandbox.kommo.field_types import FIELDS, SAMPLES, TIMEZONE

ADA = "ada@acme.io"
ENTITY = {"contacts": "contact", "leads": "lead", "companies": "company"}

# Each Kommo type's sample (field_types.SAMPLES[type][0]) as Mailchimp holds it, and the merge
# type it is created with. Dates are days in the account's timezone (Europe/Moscow).
EXPECTED: dict[str, tuple[str, Any]] = {
    "text": ("text", "Head of Procurement"),
    "textarea": ("text", "Met at the Berlin fair.\nPrefers calls after 3pm."),
    "numeric": ("number", "250"),
    "price": ("number", "1999"),
    "monetary": ("number", "125000.5"),
    "checkbox": ("text", "Yes"),
    "select": ("dropdown", "Regular"),
    "radiobutton": ("radio", "Email"),
    "multiselect": ("text", "Webinars, News"),
    "multitext": ("text", "@acme_jane, jane.doe"),
    "date": ("date", "03/15/2024"),
    "date_time": ("date", "09/17/2024"),
    "birthday": ("birthday", "07/04"),
    "url": ("url", "https://acme.example/"),
    "streetaddress": ("text", "Tverskaya 7, Moscow"),
    "smart_address": ("text", "Nikoloyamskaya 28/60, Moscow, 109240, RU"),
    "legal_entity": ("text", "Acme LLC"),
    "category": ("dropdown", "Hardware"),
    "chained_list": ("text", '{"catalog_id":4521,"catalog_element_id":525439}'),
    "tracking_data": ("text", "google"),
    "items": ("text", "Widget × 2; Gadget × 1"),
    "linked_entity": ("text", "Order 17"),
    "file": ("text", "contract.pdf"),
}


def person_with_a_deal(world, sales) -> dict[str, int]:
    """Ada, her company and her deciding lead: the three records a field map reads."""
    world.kommo.set_account(timezone=TIMEZONE)
    acme = world.kommo.add_company("Acme")
    ada = world.kommo.add_contact("Ada", "Lovelace", email=ADA, company_id=acme, consent=True)
    lead = world.kommo.add_lead(
        "Deal", 10, sales, world.status_id(sales, "Qualified"), contact_ids=[ada]
    )
    return {"contacts": ada, "leads": lead, "companies": acme}


def field_of(world, kind: str, records: dict[str, int], sample: int = 0) -> tuple[int, str]:
    """The sample field of a Kommo type (named "MC …": the sandbox's own fields share names),
    its value set on the record it belongs to; the field id and its source for `from:`."""
    definition = FIELDS[kind]
    entity, name = definition["entity_type"], "MC " + definition["name"]
    choices = [e["value"] for e in definition["enums"] or []]
    field_id = world.kommo.add_custom_field(name, kind, enum_values=choices, entity=entity)
    world.kommo.set_field_values(entity, records[entity], field_id, SAMPLES[kind][sample])
    return field_id, f"{ENTITY[entity]}.{name}"


def merge_values(world) -> dict[str, Any]:
    return world.mailchimp.member(world.list_id, ADA)["merge_fields"]


def test_one_field_of_each_kommo_type_lands_in_a_merge_field_of_the_type_that_fits(world, sales):
    records = person_with_a_deal(world, sales)
    tags = {kind: f"F{n:02d}" for n, kind in enumerate(EXPECTED)}
    entries = [{"from": field_of(world, kind, records)[1], "to": tags[kind]} for kind in EXPECTED]
    world.with_mailchimp(fields=entries)
    result = world.cli("run")
    assert result.exit_code == 0, result.output
    held = merge_values(world)
    assert {kind: held[tags[kind]] for kind in EXPECTED} == {k: v for k, (_, v) in EXPECTED.items()}
    made = {kind: world.mailchimp.merge_field(world.list_id, tags[kind]) for kind in EXPECTED}
    assert {kind: f["type"] for kind, f in made.items()} == {k: t for k, (t, _) in EXPECTED.items()}
    assert made["select"]["options"]["choices"] == ["New", "Regular", "VIP"]
    assert made["date"]["options"]["date_format"] == "MM/DD/YYYY"
    assert all(f["public"] is False for f in made.values())


def test_a_value_cleared_in_kommo_clears_the_merge_field(world, sales):
    records = person_with_a_deal(world, sales)
    field_id, source = field_of(world, "numeric", records)
    world.with_mailchimp(fields=[{"from": source, "to": "EMPLOYEES"}])
    assert world.cli("run").exit_code == 0
    assert merge_values(world)["EMPLOYEES"] == "250"
    world.clock.advance(60)
    world.kommo.clear_field_values("contacts", records["contacts"], field_id)
    code, report = world.cli_json("run")
    assert code == 0 and report["counts"]["mailchimp.update"] == 1
    assert merge_values(world)["EMPLOYEES"] == ""


def test_a_choice_added_in_kommo_is_added_to_the_merge_field(world, sales):
    records = person_with_a_deal(world, sales)
    field_id, source = field_of(world, "select", records)
    world.with_mailchimp(fields=[{"from": source, "to": "CLIENT"}])
    assert world.cli("run").exit_code == 0
    world.clock.advance(60)
    world.kommo.add_enum(field_id, "Partner")
    world.kommo.set_field_values("contacts", records["contacts"], field_id, [{"value": "Partner"}])
    assert world.cli("run").exit_code == 0
    choices = world.mailchimp.merge_field(world.list_id, "CLIENT")["options"]["choices"]
    assert choices == ["New", "Regular", "VIP", "Partner"]
    assert merge_values(world)["CLIENT"] == "Partner"


def test_an_existing_merge_field_that_can_hold_the_values_is_used_as_it_is(world, sales):
    records = person_with_a_deal(world, sales)
    _, employees = field_of(world, "numeric", records)
    _, channel = field_of(world, "radiobutton", records)
    world.mailchimp.add_merge_field(world.list_id, "EMPLOYEES", "Staff", "text")
    world.mailchimp.add_merge_field(
        world.list_id, "CHANNEL", "Channel", "dropdown", options={"choices": ["Email"]}
    )
    world.with_mailchimp(
        fields=[{"from": employees, "to": "EMPLOYEES"}, {"from": channel, "to": "CHANNEL"}]
    )
    assert world.cli("run").exit_code == 0
    assert world.mailchimp.merge_field(world.list_id, "EMPLOYEES")["type"] == "text"
    dropdown = world.mailchimp.merge_field(world.list_id, "CHANNEL")
    assert (dropdown["type"], dropdown["options"]["choices"]) == (
        "dropdown",
        ["Email", "Phone", "SMS"],
    )
    assert {k: merge_values(world)[k] for k in ("EMPLOYEES", "CHANNEL")} == {
        "EMPLOYEES": "250",
        "CHANNEL": "Email",
    }


def test_an_existing_merge_field_of_an_unfitting_type_is_a_config_error(world, sales):
    records = person_with_a_deal(world, sales)
    _, title = field_of(world, "text", records)
    world.mailchimp.add_merge_field(world.list_id, "TITLE", "Title", "number")
    world.with_mailchimp(fields=[{"from": title, "to": "TITLE"}])
    result = world.cli("run")
    assert result.exit_code == 2
    assert "mailchimp.fields[0].to" in result.output
    assert "number" in result.output and "text" in result.output
    assert world.mailchimp.member(world.list_id, ADA) is None


def test_more_merge_fields_than_the_audience_allows_is_a_config_error_naming_the_count(
    world, sales
):
    world.mailchimp.merge_field_limit = 8  # the default audience has 4; the config adds 2
    records = person_with_a_deal(world, sales)
    kinds = ("text", "numeric", "select", "birthday")
    entries = [{"from": field_of(world, k, records)[1], "to": f"F{n}"} for n, k in enumerate(kinds)]
    world.with_mailchimp(fields=entries)
    result = world.cli("run")
    assert result.exit_code == 2, result.output
    assert "the audience has 6 merge fields and mailchimp.fields asks for 4 more" in result.output
    assert "maximum of 8" in result.output  # Mailchimp's own refusal, quoted


def test_an_unknown_kommo_field_is_a_config_error_with_a_did_you_mean(world, sales):
    records = person_with_a_deal(world, sales)
    field_of(world, "numeric", records)
    world.with_mailchimp(fields=[{"from": "contact.MC Employes", "to": "EMPLOYEES"}])
    result = world.cli("run")
    assert result.exit_code == 2
    assert "mailchimp.fields[0].from" in result.output
    assert "did you mean" in result.output and "MC Employees" in result.output


def test_kommo_tags_come_and_go_under_the_prefix_and_the_marketers_own_stay(world, sales):
    records = person_with_a_deal(world, sales)
    world.kommo.tag("contacts", records["contacts"], "vip", "fair-2026")
    world.kommo.tag("leads", records["leads"], "upsell")
    world.mailchimp.add_member(world.list_id, ADA, tags=["Newsletter 2026"])  # marketer's own
    world.with_mailchimp(kommo_tags={"from": ["contact", "lead"], "prefix": "kommo:"})
    assert world.cli("run").exit_code == 0
    assert world.mailchimp.member_tags(world.list_id, ADA) == {
        "Newsletter 2026",
        "In Progress",
        "kommo:vip",
        "kommo:fair-2026",
        "kommo:upsell",
    }
    world.clock.advance(60)
    world.kommo.untag("contacts", records["contacts"], "fair-2026")
    world.kommo.tag("contacts", records["contacts"], "webinar")
    code, report = world.cli_json("run")
    assert code == 0
    assert world.mailchimp.member_tags(world.list_id, ADA) == {
        "In Progress",
        "kommo:vip",
        "kommo:upsell",
        "kommo:webinar",
        "Newsletter 2026",
    }
    assert report["counts"]["mailchimp.kommo_tags.added"] == 1
    assert report["counts"]["mailchimp.kommo_tags.removed"] == 1


def test_kommo_tags_past_the_cap_are_counted_and_not_sent(world, sales):
    records = person_with_a_deal(world, sales)
    world.kommo.tag("contacts", records["contacts"], "a", "b", "c")
    world.with_mailchimp(kommo_tags={"prefix": "k:", "max": 2})
    code, report = world.cli_json("run")
    assert code == 0
    assert world.mailchimp.member_tags(world.list_id, ADA) == {"In Progress", "k:a", "k:b"}
    assert report["counts"]["mailchimp.kommo_tags.over_cap"] == 1


def test_a_mapping_change_replans_everyone_and_an_unchanged_config_nobody(world, sales):
    records = person_with_a_deal(world, sales)
    world.kommo.add_contact("Bob", email="bob@acme.io", consent=True)
    _, employees = field_of(world, "numeric", records)
    world.with_mailchimp()
    assert world.cli("run").exit_code == 0
    world.clock.advance(60)
    code, report = world.cli_json("run")
    assert (code, report["counts"].get("mailchimp.replanned_for_new_settings", 0)) == (0, 0)
    world.raw["mailchimp"]["fields"] = [{"from": employees, "to": "EMPLOYEES"}]
    world.clock.advance(60)
    code, report = world.cli_json("run")
    assert code == 0 and report["counts"]["mailchimp.replanned_for_new_settings"] == 2
    assert report["counts"]["mailchimp.update"] == 2  # Bob's EMPLOYEES is cleared ("")
    assert merge_values(world)["EMPLOYEES"] == "250"
    world.clock.advance(60)
    reads = len(world.mailchimp.requests("GET", f"/3.0/lists/{world.list_id}/merge-fields"))
    written = len(world.mailchimp.writes())
    code, report = world.cli_json("run")
    assert code == 0 and not report["counts"].get("mailchimp.replanned_for_new_settings")
    assert report["counts"].get("mailchimp.done", 0) == 0
    assert not world.mailchimp.writes()[written:]
    after = len(world.mailchimp.requests("GET", f"/3.0/lists/{world.list_id}/merge-fields"))
    assert after == reads  # merge fields remembered: nothing asked


def test_a_value_mailchimp_cannot_hold_is_skipped_counted_and_the_rest_sent(world, sales):
    records = person_with_a_deal(world, sales)
    employees_id, employees = field_of(world, "numeric", records)
    title_id, title = field_of(world, "text", records)
    world.kommo.set_field_values("contacts", records["contacts"], employees_id, [{"value": "lots"}])
    world.kommo.set_field_values("contacts", records["contacts"], title_id, [{"value": "é" * 200}])
    world.with_mailchimp(
        fields=[{"from": employees, "to": "EMPLOYEES"}, {"from": title, "to": "TITLE"}]
    )
    code, report = world.cli_json("run")
    assert code == 0, json.dumps(report)
    assert report["counts"]["mailchimp.fields.skipped.not_a_number"] == 1
    assert report["counts"]["mailchimp.fields.truncated"] == 1
    assert merge_values(world)["EMPLOYEES"] == ""  # never written
    assert merge_values(world)["TITLE"] == "é" * 127  # 254 bytes: cut on a character boundary
