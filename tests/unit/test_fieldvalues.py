"""Every Kommo field type, from its wire shape to a Mailchimp merge value and a Klaviyo
property; cleared values, unknown types and shapes, and what each target refuses."""

import json
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from kommo_sync.fieldvalues import (
    CLEARED,
    FIELD_TYPES,
    SHAPES,
    UNKNOWN_SHAPE,
    Converted,
    Day,
    MergeFieldSpec,
    Moment,
    Number,
    Structured,
    Text,
    Texts,
    Unknown,
    normalise,
    to_klaviyo,
    to_mailchimp,
)
from kommo_sync.sandbox.kommo.field_types import FIELDS, SAMPLES, TIMEZONE, field_value

MOSCOW = ZoneInfo("Europe/Moscow")
TEXT = MergeFieldSpec("text")
NUMBER = MergeFieldSpec("number")
DATE = MergeFieldSpec("date", date_format="MM/DD/YYYY")
BIRTHDAY = MergeFieldSpec("birthday", date_format="MM/DD")


def dropdown(*choices: str) -> MergeFieldSpec:
    return MergeFieldSpec("dropdown", choices=choices)


ADDRESS = [
    {"value": "Nikoloyamskaya 28/60", "enum_id": 1, "enum_code": "address_line_1"},
    {"value": "Moscow", "enum_id": 3, "enum_code": "city"},
    {"value": "109240", "enum_id": 5, "enum_code": "zip"},
    {"value": "RU", "enum_id": 6, "enum_code": "country"},
]
ADDRESS_OBJECT = {
    "address_line_1": "Nikoloyamskaya 28/60",
    "city": "Moscow",
    "zip": "109240",
    "country": "RU",
}
LEGAL = {"name": "Acme LLC", "entity_type": 2, "vat_id": "7701234567", "kpp": None}
ITEMS = [
    {"value": {"sku": "W-1", "description": "Widget", "unit_price": 10.5, "quantity": 2}},
    {"value": {"sku": "G-7", "description": "Gadget", "unit_price": 99, "quantity": 1}},
]
LINKED = {"name": "Order 17", "entity_id": 17, "entity_type": "catalog_elements", "catalog_id": 9}
FILE = {"file_uuid": "6f1c", "version_uuid": "9a2b", "file_name": "contract.pdf", "file_size": 4}

# field type, values on the wire, merge field, Mailchimp value, Klaviyo value
TABLE = [
    ("text", [{"value": "Head of Sales"}], TEXT, "Head of Sales", "Head of Sales"),
    (
        "textarea",
        [{"value": "Line one\nline two"}],
        TEXT,
        "Line one\nline two",
        "Line one\nline two",
    ),
    ("numeric", [{"value": "1,234.50"}], NUMBER, "1234.5", 1234.5),
    ("price", [{"value": 1999}], NUMBER, "1999", 1999),
    ("monetary", [{"value": "125000.00"}], NUMBER, "125000", 125000),
    ("checkbox", [{"value": True}], TEXT, "Yes", True),
    (
        "select",
        [{"value": "VIP", "enum_id": 3, "enum_code": None}],
        dropdown("New", "VIP"),
        "VIP",
        "VIP",
    ),
    (
        "radiobutton",
        [{"value": "Email", "enum_id": 3001}],
        MergeFieldSpec("radio", choices=("Email", "SMS")),
        "Email",
        "Email",
    ),
    (
        "multiselect",
        [{"value": "Webinars", "enum_id": 1}, {"value": "News", "enum_id": 3}],
        TEXT,
        "Webinars, News",
        ["Webinars", "News"],
    ),
    (
        "multitext",
        [{"value": "+7912", "enum_id": 1, "enum_code": "WORK"}, {"value": "+7913", "enum": "MOB"}],
        MergeFieldSpec("phone", phone_format="International"),
        "+7912",
        ["+7912", "+7913"],
    ),
    ("date", [{"value": 1634590800}], DATE, "10/19/2021", "2021-10-19"),
    ("date_time", [{"value": 1726572758}], DATE, "09/17/2024", "2024-09-17T14:32:38+03:00"),
    ("birthday", [{"value": 647035200}], BIRTHDAY, "07/04", "1990-07-04"),
    (
        "url",
        [{"value": "https://acme.example/"}],
        MergeFieldSpec("url"),
        "https://acme.example/",
        "https://acme.example/",
    ),
    ("streetaddress", [{"value": "Tverskaya 7"}], TEXT, "Tverskaya 7", "Tverskaya 7"),
    ("smart_address", ADDRESS, TEXT, "Nikoloyamskaya 28/60, Moscow, 109240, RU", ADDRESS_OBJECT),
    ("legal_entity", [{"value": LEGAL}], TEXT, "Acme LLC", {k: v for k, v in LEGAL.items() if v}),
    (
        "category",
        [{"value": "Hardware", "enum_id": 4001}],
        dropdown("Hardware"),
        "Hardware",
        "Hardware",
    ),
    (
        "chained_list",
        [{"catalog_id": 4521, "catalog_element_id": 525439}],
        TEXT,
        '{"catalog_id":4521,"catalog_element_id":525439}',
        {"catalog_id": 4521, "catalog_element_id": 525439},
    ),
    ("tracking_data", [{"value": "google"}], TEXT, "google", "google"),
    ("items", ITEMS, TEXT, "Widget × 2; Gadget × 1", [item["value"] for item in ITEMS]),
    ("linked_entity", [{"value": LINKED}], TEXT, "Order 17", LINKED),
    ("file", [{"value": FILE}], TEXT, "contract.pdf", FILE),
]


def test_the_table_covers_every_one_of_the_23_types():
    assert sorted(row[0] for row in TABLE) == sorted(FIELD_TYPES)
    assert len(FIELD_TYPES) == 23


@pytest.mark.parametrize(
    "field_type, values, spec, mailchimp, klaviyo", TABLE, ids=[r[0] for r in TABLE]
)
def test_each_type_converts_for_both_targets(field_type, values, spec, mailchimp, klaviyo):
    value = normalise(field_type, values, MOSCOW)
    assert to_mailchimp(value, spec) == Converted(value=mailchimp)
    assert to_klaviyo(value) == Converted(value=klaviyo)


@pytest.mark.parametrize("field_type", FIELD_TYPES)
def test_each_cited_shape_and_sandbox_sample_reads_as_a_known_value(field_type):
    samples = [[SHAPES[field_type].item], *SAMPLES[field_type]]
    for values in samples:
        assert not isinstance(normalise(field_type, values, MOSCOW), Unknown)
    assert SHAPES[field_type].source


def test_the_sandbox_fields_carry_kommo_entries_of_their_own_type():
    entry = field_value("select")
    assert entry["field_id"] == FIELDS["select"]["id"]
    assert entry["field_type"] == "select"
    assert entry["values"][0]["value"] in [e["value"] for e in FIELDS["select"]["enums"]]
    assert normalise("birthday", SAMPLES["birthday"][0], ZoneInfo(TIMEZONE)) == Day(
        date(1990, 7, 4)
    )


@pytest.mark.parametrize("values", [None, [], [{"value": None}], [{"value": ""}, {"value": None}]])
@pytest.mark.parametrize("field_type", ["text", "numeric", "multiselect", "date", "legal_entity"])
def test_absent_or_empty_values_clear_both_targets(field_type, values):
    value = normalise(field_type, values, MOSCOW)
    assert value == CLEARED
    assert to_mailchimp(value, TEXT) == Converted(value="", cleared=True)
    assert to_klaviyo(value) == Converted(cleared=True)


def test_an_unknown_type_goes_as_compact_json_text_and_as_an_object_counted():
    raw = [{"value": {"inn": "7701", "name": "Ромашка"}}]
    value = normalise("supplier", raw, MOSCOW)
    assert value == Unknown("supplier", raw, "unknown type")
    text = json.dumps(
        {"kommo_type": "supplier", "values": raw}, separators=(",", ":"), ensure_ascii=False
    )
    assert to_mailchimp(value, TEXT) == Converted(value=text, notes=(UNKNOWN_SHAPE,))
    assert to_klaviyo(value) == Converted(
        value={"kommo_type": "supplier", "values": raw}, notes=(UNKNOWN_SHAPE,)
    )


@pytest.mark.parametrize(
    "field_type, values",
    [
        ("text", [{"value": {"nested": [1, None]}}]),
        ("text", {"value": "not a list"}),
        ("multiselect", ["Webinars"]),
        ("checkbox", [{"value": "maybe"}]),
        ("date", [{"value": "next monday"}]),
        ("legal_entity", [{"value": "Acme"}]),
        ("smart_address", [{"value": "Moscow"}]),
    ],
)
def test_an_unknown_shape_is_kept_raw_never_guessed(field_type, values):
    value = normalise(field_type, values, MOSCOW)
    assert value == Unknown(field_type, values, "unknown shape")
    assert to_mailchimp(value, TEXT).notes == (UNKNOWN_SHAPE,)
    assert to_mailchimp(value, NUMBER) == Converted(skip="unknown shape for a number merge field")
    assert to_klaviyo(value).value == {"kommo_type": field_type, "values": values}


def test_a_timestamp_beyond_the_calendar_is_out_of_range_and_a_date_field_skips_it():
    value = normalise("date", [{"value": 10**15}], MOSCOW)
    assert isinstance(value, Unknown) and value.reason == "date out of range"
    assert to_mailchimp(value, DATE) == Converted(skip="date out of range for a date merge field")


@pytest.mark.parametrize(
    "value, spec, reason",
    [
        (Text("about twelve"), NUMBER, "not a number"),
        (Text("soon"), DATE, "not a date"),
        (Text("soon"), BIRTHDAY, "not a date"),
        (Text("Gold"), dropdown("New", "VIP"), "choice not in the merge field"),
        (
            Texts(("New", "VIP")),
            dropdown("New", "VIP"),
            "several choices for a single-choice merge field",
        ),
        (Number(5), MergeFieldSpec("url"), "not a url"),
        (Text("https://x/" + "a" * 300), MergeFieldSpec("url"), "url longer than 255 bytes"),
        (Text("Moscow"), MergeFieldSpec("address"), "not an address"),
        (
            Structured("address", {"address_line_1": "Tverskaya 7", "city": "Moscow"}),
            MergeFieldSpec("address"),
            "address lacks addr1, city, state or zip",
        ),
        (Text("x"), MergeFieldSpec("imageurl"), "merge type imageurl is not written by kommo-sync"),
    ],
)
def test_a_value_the_merge_field_cannot_hold_is_a_skip_with_its_reason(value, spec, reason):
    assert to_mailchimp(value, spec) == Converted(skip=reason)


def test_numbers_that_look_like_text_stay_text_and_klaviyo_keeps_them():
    value = normalise("numeric", [{"value": "about twelve"}], MOSCOW)
    assert value == Text("about twelve")
    assert to_klaviyo(value) == Converted(value="about twelve")


def test_a_full_address_fills_an_existing_address_merge_field():
    parts = {"address_line_1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}
    converted = to_mailchimp(Structured("address", parts), MergeFieldSpec("address"))
    assert converted.value == {
        "addr1": "1 Main St",
        "city": "Springfield",
        "state": "IL",
        "zip": "62701",
    }


def test_values_reach_klaviyo_with_their_json_types():
    assert to_klaviyo(Number(Decimal("0.1"))).value == 0.1
    assert to_klaviyo(Number(10**20)).value == 10**20
    assert to_klaviyo(normalise("checkbox", [{"value": "0"}], MOSCOW)).value is False
    moment = Moment(datetime(2024, 1, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo")))
    assert to_klaviyo(moment).value == "2024-01-01T09:00:00+09:00"


def test_klaviyo_skips_a_string_over_100_kb():
    assert to_klaviyo(Text("ж" * 50_001)) == Converted(
        skip="text longer than Klaviyo's 100000 bytes"
    )
    assert to_klaviyo(Text("ж" * 50_000)) == Converted(value="ж" * 50_000)
