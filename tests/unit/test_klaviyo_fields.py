"""The Klaviyo field map, pure: values per Kommo type → properties, cleared → unset, skips and
notes counted, kommo_tags, SMS consent moves, config checks, and fingerprints that do not move
for configs without a field map."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.config_reader import Section
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig, parse_klaviyo
from kommo_sync.destinations.klaviyo.destination import KlaviyoDestination
from kommo_sync.destinations.klaviyo.field_config import FieldMap, check_resolved
from kommo_sync.destinations.klaviyo.mapping import desired_profile, plan_person
from kommo_sync.destinations.klaviyo.operations import sync_of
from kommo_sync.errors import ConfigError
from kommo_sync.fieldmap import Resolved
from kommo_sync.fieldvalues import (
    CLEARED,
    Day,
    Flag,
    KommoField,
    Moment,
    Number,
    Structured,
    Text,
    Texts,
    Unknown,
)
from kommo_sync.model import Deal, Person, Stage
from kommo_sync.plan import fingerprint

BASE = {"api_key": "pk", "list_id": "L1", "phone_region": "DE"}


def section(**raw: Any) -> KlaviyoConfig:
    return parse_klaviyo(Section({**BASE, **raw}, "klaviyo", {}))


def person(values: dict[str, Any] | None = None, **overrides: Any) -> Person:
    fields: dict[str, Any] = dict(
        contact_id=7, email="ada@acme.io", first_name="Ada", last_name="Lovelace",
        phone="030 1234567", company="Acme", lead_source="web", consent=True, stage=Stage.WON,
        deal=Deal(11, "Engines", 5000.0, "won", "Sales"), values=values or {},
    )  # fmt: skip
    fields.update(overrides)
    return Person(**fields)


# fingerprints and settings of configs without a field map -------------------------------------
def test_a_config_without_a_field_map_keeps_the_fingerprint_and_settings_of_before():
    legacy = KlaviyoConfig(**BASE, lists_by_stage={Stage.WON: "W2"})
    assert fingerprint(desired_profile(person(), legacy, False)) == "061ddb9a4acc43d0d0aa50a1"
    destination = KlaviyoDestination.__new__(KlaviyoDestination)
    destination.config = KlaviyoConfig(**BASE, lists_by_stage={Stage.WON: "W2"})
    assert fingerprint(destination.settings()) == "8cb80b45dfe9f3216187ece0"
    assert destination.field_entries() == ()


def test_a_field_map_joins_the_settings_so_configuring_one_replans():
    destination = KlaviyoDestination.__new__(KlaviyoDestination)
    destination.config = section(fields=[{"from": "contact.Industry", "to": "industry"}])
    assert destination.settings()["fields"] == [["contact.Industry", "industry"]]
    destination.config = section(kommo_tags={"from": ["lead", "contact"]})
    assert destination.settings()["kommo_tags"] == ["contact", "lead"]


# conversions ----------------------------------------------------------------------------------
FIELDS = [{"from": f"contact.F{n}", "to": f"p{n}"} for n in range(9)]
VALUES = [
    Text("Head of Procurement"),
    Number(250),
    Number(Decimal("125000.50")),
    Flag(False),
    Day(date(1990, 7, 4)),
    Moment(datetime(2024, 9, 17, 11, 32, 38, tzinfo=UTC)),
    Texts(("Webinars", "News")),
    Structured("smart_address", {"city": "Moscow", "zip": "109240"}, "Moscow 109240"),
    Structured("items", [{"sku": "W-1"}, {"sku": "G-7"}]),
]


def test_each_typed_value_becomes_a_property_of_its_json_type():
    config = section(fields=FIELDS)
    values = {f"contact.F{n}": value for n, value in enumerate(VALUES)}
    properties = desired_profile(person(values), config, False)["properties"]
    assert {k: v for k, v in properties.items() if k.startswith("p")} == {
        "p0": "Head of Procurement",
        "p1": 250,
        "p2": 125000.5,
        "p3": False,
        "p4": "1990-07-04",
        "p5": "2024-09-17T11:32:38+00:00",
        "p6": ["Webinars", "News"],
        "p7": {"city": "Moscow", "zip": "109240"},
        "p8": [{"sku": "W-1"}, {"sku": "G-7"}],
    }


def test_a_cleared_value_is_unset_when_it_was_pushed_and_a_skip_is_left_out_and_counted():
    config = section(fields=FIELDS[:3])
    pushed_values = {"contact.F0": Text("x"), "contact.F1": Number(1), "contact.F2": Number(2)}
    first, _ = plan_person(person(pushed_values), None, False, config, DEFAULT_TAGS)
    assert first is not None
    now = {"contact.F1": Text("y" * 100_001), "contact.F2": Unknown("weird", {"a": 1}, "x")}
    counts: Counter[str] = Counter()
    change, _ = plan_person(person(now), first.record, False, config, DEFAULT_TAGS, counts=counts)
    assert change is not None
    row = sync_of(change).row
    assert row.unset == ("p0",)
    assert "p1" not in row.properties and isinstance(row.properties["p2"], dict)
    assert counts == Counter(
        {"fields.skipped.text longer than Klaviyo's 100000 bytes": 1, "fields.unknown_shape": 1}
    )


def test_kommo_tags_are_sorted_once_each_and_unset_when_none_is_left():
    config = section(kommo_tags={"from": ["contact", "lead"]})
    tagged = {"contact.tags": Texts(("vip", "berlin")), "lead.tags": Texts(("vip", "b2b"))}
    assert desired_profile(person(tagged), config, False)["properties"]["kommo_tags"] == [
        "b2b", "berlin", "vip",
    ]  # fmt: skip
    untagged = {"contact.tags": CLEARED, "lead.tags": CLEARED}
    assert desired_profile(person(untagged), config, False)["properties"]["kommo_tags"] is None


# SMS consent -----------------------------------------------------------------------------------
SMS = {"sms_consent_field": "SMS consent"}
BOX = "contact.SMS consent"


def test_a_checked_box_subscribes_sms_once_and_unchecking_it_unsubscribes():
    config = section(**SMS)
    first, _ = plan_person(person({BOX: Flag(True)}), None, False, config, DEFAULT_TAGS)
    assert first is not None and sync_of(first).sms_subscribe
    assert (
        plan_person(person({BOX: Flag(True)}), first.record, False, config, DEFAULT_TAGS)[0] is None
    )
    off, _ = plan_person(person({BOX: CLEARED}), first.record, False, config, DEFAULT_TAGS)
    assert off is not None and sync_of(off).sms_unsubscribe and not sync_of(off).unsubscribe


@pytest.mark.parametrize(
    ("overrides", "blocked", "reason"),
    [
        ({"phone": "12"}, False, "sms.bad_phone"),
        ({"phone": None}, False, "sms.no_phone"),
        ({}, True, "sms.kept_unsubscribed"),
    ],
)
def test_a_checked_box_without_a_subscription_says_why(overrides, blocked, reason):
    counts: Counter[str] = Counter()
    sms_person = person({BOX: Flag(True)}, **overrides)
    change, _ = plan_person(
        sms_person, None, False, section(**SMS), DEFAULT_TAGS, sms_blocked=blocked, counts=counts
    )
    assert change is not None and not sync_of(change).sms_subscribe
    assert counts == Counter({reason: 1})


def test_an_age_gated_subscription_carries_the_date_of_birth_or_waits_for_one():
    config = section(**SMS, age_gated=True, birthday_field="Birthday")
    born = {BOX: Flag(True), "contact.Birthday": Day(date(1990, 7, 4))}
    change, _ = plan_person(person(born), None, False, config, DEFAULT_TAGS)
    assert change is not None and sync_of(change).birth_date == "1990-07-04"
    counts: Counter[str] = Counter()
    plan_person(person({BOX: Flag(True)}), None, False, config, DEFAULT_TAGS, counts=counts)
    assert counts == Counter({"sms.no_birthday": 1})


# config -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"fields": [{"from": "contact.X", "to": "deal_amount"}]}, "klaviyo.fields[0].to"),
        ({"fields": [{"from": "contact.X", "to": "first_name"}]}, "klaviyo.fields[0].to"),
        ({"fields": [{"from": "contact.X", "to": "$email"}]}, "klaviyo.fields[0].to"),
        ({"kommo_tags": {"from": ["company"]}}, "klaviyo.kommo_tags.from"),
        ({"age_gated": True, "birthday_field": "B"}, "klaviyo.age_gated"),
        ({"age_gated": True, **SMS}, "klaviyo.birthday_field"),
        ({"sms_consent_field": True}, "klaviyo.sms_consent_field"),
    ],
)
def test_config_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError) as error:
        section(**raw)
    assert error.value.key == key


def test_the_sms_consent_must_be_a_checkbox_and_the_birthday_a_day():
    field_map: FieldMap = section(**SMS, age_gated=True, birthday_field="B").field_map
    text = KommoField(1, "SMS consent", "text", "contacts")
    assert field_map.sms_consent is not None and field_map.birthday is not None
    with pytest.raises(ConfigError, match="checkbox"):
        check_resolved((Resolved(field_map.sms_consent, text),))
    with pytest.raises(ConfigError, match="birthday or date"):
        check_resolved((Resolved(field_map.birthday, text),))
    check_resolved((Resolved(field_map.birthday, KommoField(2, "B", "date", "contacts")),))
