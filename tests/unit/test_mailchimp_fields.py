"""The Mailchimp field map and Kommo tags in planning, pure: each merge type's value path, clears,
skips and notes counted, fingerprints that stay put for configs without them, tag moves, cap."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.config_reader import Section
from kommo_sync.destinations.mailchimp.config import KommoTags, MailchimpConfig, parse_mailchimp
from kommo_sync.destinations.mailchimp.field_plan import FieldPlan, MappedField, tag_cost
from kommo_sync.destinations.mailchimp.mapping import desired_member, plan_person
from kommo_sync.destinations.mailchimp.operations import KommoTagMove, Subscribe, Update
from kommo_sync.errors import ConfigError
from kommo_sync.fieldvalues import (
    CLEARED,
    Day,
    Flag,
    MergeFieldSpec,
    Number,
    Structured,
    Text,
    Texts,
    Value,
)
from kommo_sync.model import Deal, Person, Stage
from kommo_sync.plan import STATUS, Change, fingerprint

LEGACY = {"PHONE": "phone", "COMPANY": "company", "DEAL": "deal_amount"}


def config(**overrides: Any) -> MailchimpConfig:
    values: dict[str, Any] = dict(
        api_key="k-us1", list_id="l1", base_url="http://mc/3.0", merge_fields=LEGACY
    )
    return MailchimpConfig(**{**values, **overrides})


def person(**values: Value) -> Person:
    return Person(
        contact_id=7,
        email="ada@acme.io",
        first_name="Ada",
        last_name="Lovelace",
        phone="+49 30 1234567",
        company="Acme",
        lead_source=None,
        consent=True,
        stage=Stage.WON,
        deal=Deal(1, "Engines", 5000.0, "Won", "Sales"),
        values=values,
    )


def one(spec: MergeFieldSpec, value: Value) -> tuple[dict[str, Any], Counter[str]]:
    extra = FieldPlan((MappedField("F", "contact.F", spec),))
    return extra.merge_values(person(**{"contact.F": value})), extra.counts


# every merge type's value path -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "value", "sent"),
    [
        (MergeFieldSpec("text"), Text("Head of Procurement"), "Head of Procurement"),
        (MergeFieldSpec("text"), Flag(True), "Yes"),
        (MergeFieldSpec("number"), Number(Decimal("125000.5")), "125000.5"),
        (MergeFieldSpec("date", "MM/DD/YYYY"), Day(date(2024, 3, 15)), "03/15/2024"),
        (MergeFieldSpec("date", "DD/MM/YYYY"), Day(date(2024, 3, 15)), "15/03/2024"),
        (MergeFieldSpec("birthday", "MM/DD"), Day(date(1990, 7, 4)), "07/04"),
        (MergeFieldSpec("dropdown", choices=("New", "VIP")), Text("VIP"), "VIP"),
        (MergeFieldSpec("radio", choices=("Email", "SMS")), Text("SMS"), "SMS"),
        (MergeFieldSpec("phone", phone_format="International"), Texts(("+49 1", "+49 2")), "+49 1"),
        (MergeFieldSpec("url"), Text("https://acme.example/"), "https://acme.example/"),
    ],
)
def test_each_merge_type_gets_the_value_in_its_own_format(spec, value, sent):
    assert one(spec, value) == ({"F": sent}, Counter())


def test_an_address_goes_as_mailchimps_address_object():
    parts = {"address_line_1": "1 Main St", "city": "Austin", "state": "TX", "zip": "73301"}
    sent, _ = one(MergeFieldSpec("address"), Structured("address", parts, "1 Main St"))
    assert sent == {"F": {"addr1": "1 Main St", "city": "Austin", "state": "TX", "zip": "73301"}}


def test_a_value_cleared_in_kommo_sends_an_empty_string_that_clears_the_merge_field():
    assert one(MergeFieldSpec("number"), CLEARED) == ({"F": ""}, Counter())


def test_a_value_the_merge_field_cannot_hold_is_left_out_and_counted_by_reason():
    sent, counts = one(MergeFieldSpec("dropdown", choices=("New",)), Text("Partner"))
    assert sent == {}
    assert counts == Counter({"mailchimp.fields.skipped.choice_not_in_the_merge_field": 1})


def test_a_cut_text_is_sent_and_counted_as_truncated():
    sent, counts = one(MergeFieldSpec("text"), Text("x" * 300))
    assert sent == {"F": "x" * 255}
    assert counts == Counter({"mailchimp.fields.truncated": 1})


def test_a_source_not_read_for_the_person_leaves_the_merge_field_alone():
    extra = FieldPlan((MappedField("F", "contact.F", MergeFieldSpec("text")),))
    assert extra.merge_values(person()) == {}
    assert extra.counts == Counter({"mailchimp.fields.skipped.not_read": 1})


# fingerprints ----------------------------------------------------------------------------------
def test_a_config_without_a_field_map_keeps_the_fingerprint_of_the_release_before():
    # computed with the code before the field map (commit f23079d) for this very person
    assert fingerprint(desired_member(person(), config(), DEFAULT_TAGS)) == (
        "be16bee80beb5fbf2c05f2e5"
    )
    assert fingerprint(desired_member(person(), config(), DEFAULT_TAGS, FieldPlan())) == (
        "be16bee80beb5fbf2c05f2e5"
    )


def test_a_field_map_puts_its_values_among_the_merge_fields_and_into_the_fingerprint():
    extra = FieldPlan((MappedField("EMPLOYEES", "contact.E", MergeFieldSpec("number")),))
    desired = desired_member(person(**{"contact.E": Number(250)}), config(), DEFAULT_TAGS, extra)
    assert desired["merge_fields"] == {
        "FNAME": "Ada",
        "LNAME": "Lovelace",
        "PHONE": "+49 30 1234567",
        "COMPANY": "Acme",
        "DEAL": "5000",
        "EMPLOYEES": "250",
    }
    assert fingerprint(desired) != "be16bee80beb5fbf2c05f2e5"


def test_a_changed_mapped_value_updates_only_that_merge_field():
    extra = FieldPlan((MappedField("EMPLOYEES", "contact.E", MergeFieldSpec("number")),))
    first = plan_person(
        person(**{"contact.E": Number(250)}), None, False, config(), DEFAULT_TAGS, extra
    )
    assert isinstance(first, Change)
    pushed = {**first.record, STATUS: "subscribed"}
    again = person(**{"contact.E": Number(300)})
    change = plan_person(again, pushed, False, config(), DEFAULT_TAGS, extra)
    assert isinstance(change, Change) and change.summary["fields"] == ["EMPLOYEES"]
    assert isinstance(change.payload, Update) and change.payload.merge_fields is not None
    assert change.payload.merge_fields["EMPLOYEES"] == "300"
    assert plan_person(again, {**change.record}, False, config(), DEFAULT_TAGS, extra) is None


# Kommo tags ------------------------------------------------------------------------------------
def tags_plan(max_tags: int = 50, admitted: set[str] | None = None) -> FieldPlan:
    return FieldPlan(
        kommo_tags=KommoTags(("contact", "lead"), "kommo:", max_tags), admitted=admitted or set()
    )


def test_kommo_tags_of_contact_and_lead_are_prefixed_deduplicated_and_sorted():
    ada = person(**{"contact.tags": Texts(("vip", "fair")), "lead.tags": Texts(("vip",))})
    assert tags_plan().tags_of(ada) == ["kommo:fair", "kommo:vip"]
    assert tags_plan().tags_of(person(**{"contact.tags": CLEARED})) == []


def test_kommo_tags_past_the_cap_are_not_sent_and_counted():
    extra = tags_plan(max_tags=2, admitted={"kommo:old"})
    ada = person(**{"contact.tags": Texts(("a", "b", "old"))})
    assert extra.tags_of(ada) == ["kommo:a", "kommo:old"]
    assert extra.counts == Counter({"mailchimp.kommo_tags.over_cap": 1})


def test_a_new_member_gets_its_kommo_tags_and_a_known_one_only_what_moved():
    extra = tags_plan()
    first = plan_person(
        person(**{"contact.tags": Texts(("a", "b"))}), None, False, config(), DEFAULT_TAGS, extra
    )
    assert isinstance(first, Change) and isinstance(first.payload, Subscribe)
    assert first.payload.kommo == KommoTagMove(("kommo:a", "kommo:b"))
    pushed = {**first.record, STATUS: "subscribed"}
    later = plan_person(
        person(**{"contact.tags": Texts(("b", "c"))}), pushed, False, config(), DEFAULT_TAGS, extra
    )
    assert isinstance(later, Change) and isinstance(later.payload, Update)
    assert later.payload.kommo == KommoTagMove(("kommo:c",), ("kommo:a",))
    assert later.payload.body() == {} and later.payload.tag is None  # only the tags move
    assert later.summary["kommo_tags_added"] == ["kommo:c"]


def test_an_untrusted_record_removes_every_managed_kommo_tag_the_member_should_not_carry():
    extra = tags_plan(admitted={"kommo:a", "kommo:b", "kommo:z"})
    assert extra.move(["kommo:a"], ["kommo:a"], trusted=False) == KommoTagMove(
        ("kommo:a",), ("kommo:b", "kommo:z")
    )
    assert extra.move(["kommo:a"], ["kommo:a"], trusted=True) is None
    assert extra.move(None, ["kommo:a"], trusted=True) is None  # kommo_tags not configured


def test_the_cost_of_kommo_tag_moves_counts_one_segment_call_per_tag_and_500_members():
    moves = [KommoTagMove(("k:a",), ("k:b",))] * 501 + [KommoTagMove(("k:c",))]
    assert tag_cost(moves) == Counter(
        {
            "mailchimp.kommo_tags.added": 502,
            "mailchimp.kommo_tags.removed": 501,
            "mailchimp.kommo_tags.segment_calls": 5,
        }
    )


# config ----------------------------------------------------------------------------------------
def parse(**section: Any) -> MailchimpConfig:
    raw = {"api_key": "abc-us1", "list_id": "l1", **section}
    return parse_mailchimp(Section(raw, "mailchimp", {}))


def test_fields_and_kommo_tags_parse_with_their_defaults():
    parsed = parse(fields=[{"from": "contact.Industry", "to": "INDUSTRY"}], kommo_tags={})
    assert [(e.source.key, e.target, e.where) for e in parsed.fields] == [
        ("contact.Industry", "INDUSTRY", "mailchimp.fields[0]")
    ]
    assert parsed.kommo_tags == KommoTags(("contact",), "kommo:", 50)
    assert parse().fields == () and parse().kommo_tags is None


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("industry", "merge tags are 1-10 of A-Z, 0-9, _"),
        ("INDUSTRYXYZW", "merge tags are 1-10"),
        ("FNAME", "always holds the person's name"),
        ("COMPANY", "also in mailchimp.merge_fields"),
    ],
)
def test_a_fields_target_that_is_no_merge_tag_of_its_own_is_a_config_error(target, says):
    with pytest.raises(ConfigError) as raised:
        parse(fields=[{"from": "contact.Industry", "to": target}])
    assert "mailchimp.fields[0].to" in str(raised.value) and says in str(raised.value)


def test_kommo_tags_from_an_unknown_entity_is_a_config_error():
    with pytest.raises(ConfigError, match=r"mailchimp.kommo_tags.from.*company"):
        parse(kommo_tags={"from": ["company"]})
