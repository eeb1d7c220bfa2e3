"""The rules under the conversions: numbers, timezones, the 255-byte cut, which merge type a
field gets and which existing merge field can hold it, built-in attributes, odd input."""

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from kommo_sync.fieldvalues import (
    CLEARED,
    FIELD_TYPES,
    TRUNCATED,
    Converted,
    Day,
    KommoField,
    MergeFieldSpec,
    Moment,
    Number,
    Text,
    Texts,
    Unknown,
    builtin_type,
    builtin_values,
    mailchimp_can_hold,
    mailchimp_merge_type,
    missing_choices,
    normalise,
    to_klaviyo,
    to_mailchimp,
)

LOS_ANGELES, TOKYO, MOSCOW = (
    ZoneInfo(k) for k in ("America/Los_Angeles", "Asia/Tokyo", "Europe/Moscow")
)
TEXT = MergeFieldSpec("text")


def stamp(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


@pytest.mark.parametrize("tz", [LOS_ANGELES, TOKYO, MOSCOW, ZoneInfo("Pacific/Kiritimati")])
@pytest.mark.parametrize("stored_in", ["account", "utc"])
@pytest.mark.parametrize("day", [date(1990, 7, 4), date(2024, 2, 29), date(2024, 12, 31)])
def test_a_birthday_stays_on_its_calendar_day_however_kommo_stored_its_midnight(tz, stored_in, day):
    seconds = stamp(day, tz if stored_in == "account" else UTC)
    value = normalise("birthday", [{"value": seconds}], tz)
    assert value == Day(day)
    assert (
        to_mailchimp(value, MergeFieldSpec("birthday", date_format="DD/MM")).value
        == f"{day.day:02d}/{day.month:02d}"
    )
    assert to_klaviyo(value).value == day.isoformat()


def test_a_date_read_in_the_wrong_timezone_would_have_shifted_a_day():
    seconds = stamp(date(1990, 7, 4), TOKYO)  # 1990-07-03 15:00 UTC
    assert datetime.fromtimestamp(seconds, UTC).date() == date(1990, 7, 3)
    assert normalise("date", [{"value": seconds}], TOKYO) == Day(date(1990, 7, 4))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1634590800", date(2021, 10, 19)),
        ("2021-10-19", date(2021, 10, 19)),
        ("2021-10-19T00:00:00+03:00", date(2021, 10, 19)),
    ],
)
def test_dates_as_numeric_or_iso_strings_are_read_too(raw, expected):
    assert normalise("date", [{"value": raw}], MOSCOW) == Day(expected)


def test_a_date_time_converts_to_iso_with_the_account_offset_and_the_local_day():
    seconds = int(datetime(2024, 7, 1, 23, 30, tzinfo=LOS_ANGELES).timestamp())
    value = normalise("date_time", [{"value": seconds}], LOS_ANGELES)
    assert to_klaviyo(value).value == "2024-07-01T23:30:00-07:00"
    assert (
        to_mailchimp(value, MergeFieldSpec("date", date_format="DD/MM/YYYY")).value == "01/07/2024"
    )


def test_a_date_time_string_without_offset_is_account_wall_clock_time():
    value = normalise("date_time", [{"value": "2024-01-02 10:00:00"}], TOKYO)
    assert value == Moment(datetime(2024, 1, 2, 10, tzinfo=TOKYO))


def test_an_unknown_date_format_falls_back_to_iso_which_mailchimp_accepts():
    assert (
        to_mailchimp(Day(date(812, 3, 4)), MergeFieldSpec("date", date_format="YYYY/MM/DD")).value
        == "0812-03-04"
    )
    assert to_mailchimp(Day(date(812, 3, 4)), MergeFieldSpec("date")).value == "03/04/0812"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1,234.50", "1234.5"),
        ("1.234,50", "1234.5"),
        ("1 234 567", "1234567"),
        ("1\u00a0234,5", "1234.5"),
        ("1,234,567", "1234567"),
        ("1.234.567", "1234567"),
        ("1,234", "1234"),
        ("1,5", "1.5"),
        ("-0.50", "-0.5"),
        (12.0, "12"),
        (0.1, "0.1"),
        ("1e3", None),
        (10**25, "10000000000000000000000000"),
    ],
)
def test_numbers_lose_thousands_separators_and_trailing_zeros(raw, expected):
    value = normalise("numeric", [{"value": raw}], MOSCOW)
    converted = to_mailchimp(value, MergeFieldSpec("number"))
    assert converted == (Converted(value=expected) if expected else Converted(skip="not a number"))


@pytest.mark.parametrize("raw", [True, float("nan"), float("inf"), [1], {"amount": 1}])
def test_a_bool_or_nan_or_container_is_never_a_number(raw):
    assert not isinstance(normalise("price", [{"value": raw}], MOSCOW), Number)


def test_text_is_cut_to_255_bytes_of_utf8_on_a_character_boundary_and_counted():
    text = "a" + "ж" * 200  # 401 bytes; a 2-byte character straddles byte 255
    converted = to_mailchimp(Text(text), TEXT)
    assert converted.notes == (TRUNCATED,)
    assert converted.value == "a" + "ж" * 127
    assert len(converted.value.encode("utf-8")) == 255


def test_non_bmp_characters_are_cut_whole():
    converted = to_mailchimp(Text("😀" * 100), TEXT)  # 4 bytes each
    assert converted.value == "😀" * 63
    assert converted.notes == (TRUNCATED,)


def test_text_of_exactly_255_bytes_is_not_counted_as_cut():
    assert to_mailchimp(Text("é" * 127 + "a"), TEXT) == Converted(value="é" * 127 + "a")


def test_a_lone_surrogate_becomes_a_replacement_character_not_an_encoding_error():
    value = normalise("text", [{"value": "ok \ud800"}], MOSCOW)
    assert value == Text("ok \ufffd")
    assert to_mailchimp(value, TEXT).value == "ok \ufffd"


def test_a_multiselect_joined_as_text_is_cut_like_any_text():
    value = Texts(tuple(f"choice {n}" for n in range(40)))
    converted = to_mailchimp(value, TEXT)
    assert converted.value.startswith("choice 0, choice 1, ")
    assert converted.notes == (TRUNCATED,)


def field(
    kind: str, enums: tuple[tuple[int, str], ...] = (), code: str | None = None
) -> KommoField:
    return KommoField(1, "F", kind, "contacts", enums, code)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("numeric", MergeFieldSpec("number")),
        ("price", MergeFieldSpec("number")),
        ("monetary", MergeFieldSpec("number")),
        ("date", MergeFieldSpec("date", date_format="MM/DD/YYYY")),
        ("date_time", MergeFieldSpec("date", date_format="MM/DD/YYYY")),
        ("birthday", MergeFieldSpec("birthday", date_format="MM/DD")),
        ("select", MergeFieldSpec("dropdown", choices=("New", "VIP"))),
        ("category", MergeFieldSpec("dropdown", choices=("New", "VIP"))),
        ("radiobutton", MergeFieldSpec("radio", choices=("New", "VIP"))),
        ("url", MergeFieldSpec("url")),
        *[
            (kind, MergeFieldSpec("text"))
            for kind in [
                "text",
                "textarea",
                "checkbox",
                "multiselect",
                "multitext",
                "streetaddress",
                "smart_address",
                "legal_entity",
                "chained_list",
                "tracking_data",
                "items",
                "linked_entity",
                "file",
                "supplier",
            ]
        ],
    ],
)
def test_the_merge_type_created_for_each_kommo_type(kind, expected):
    assert mailchimp_merge_type(field(kind, ((1, "New"), (2, "VIP")))) == expected


def test_a_phone_multitext_gets_a_phone_merge_field():
    assert mailchimp_merge_type(field("multitext", code="PHONE")) == MergeFieldSpec(
        "phone", phone_format="International"
    )


@pytest.mark.parametrize("kind", FIELD_TYPES)
def test_a_text_merge_field_holds_every_type(kind):
    assert mailchimp_can_hold(TEXT, field(kind))


@pytest.mark.parametrize(
    "existing, kind, holds",
    [
        ("number", "numeric", True),
        ("number", "monetary", True),
        ("number", "text", False),
        ("date", "date_time", True),
        ("date", "birthday", True),
        ("birthday", "date", True),
        ("date", "numeric", False),
        ("url", "url", True),
        ("url", "text", False),
        ("phone", "multitext", True),
        ("phone", "numeric", False),
        ("address", "smart_address", True),
        ("address", "streetaddress", False),
        ("zip", "text", False),
        ("imageurl", "url", False),
    ],
)
def test_which_existing_merge_types_can_hold_which_kommo_types(existing, kind, holds):
    assert mailchimp_can_hold(MergeFieldSpec(existing), field(kind)) is holds


def test_a_dropdown_holds_a_choice_field_once_every_choice_is_there():
    kommo = field("select", ((1, "New"), (2, "VIP")))
    partial = MergeFieldSpec("dropdown", choices=("New",))
    assert missing_choices(partial, kommo) == ("VIP",)
    assert not mailchimp_can_hold(partial, kommo)
    assert mailchimp_can_hold(MergeFieldSpec("radio", choices=("VIP", "New", "Old")), kommo)
    assert not mailchimp_can_hold(
        MergeFieldSpec("dropdown", choices=("New", "VIP")), field("multiselect")
    )


def test_a_checkbox_fits_a_yes_no_radio():
    radio = MergeFieldSpec("radio", choices=("Yes", "No"))
    assert mailchimp_can_hold(radio, field("checkbox"))
    assert to_mailchimp(normalise("checkbox", [{"value": False}], MOSCOW), radio).value == "No"
    assert missing_choices(MergeFieldSpec("radio", choices=("Yes",)), field("checkbox")) == ("No",)


@pytest.mark.parametrize(
    "entity, attribute, kind",
    [
        ("leads", "price", "price"),
        ("leads", "created_at", "date_time"),
        ("leads", "closed_at", "date_time"),
        ("leads", "pipeline", "text"),
        ("leads", "status", "text"),
        ("leads", "loss_reason", "text"),
        ("contacts", "tags", "multiselect"),
        ("contacts", "first_name", "text"),
        ("contacts", "responsible_user", "text"),
        ("companies", "name", "text"),
        ("contacts", "price", None),
        ("companies", "first_name", None),
    ],
)
def test_built_in_attributes_have_a_field_type(entity, attribute, kind):
    assert builtin_type(entity, attribute) == kind


def test_built_in_values_go_through_the_same_conversions():
    tags = builtin_values("tags", [{"id": 1, "name": "vip"}, {"id": 2, "name": "expo"}])
    assert to_klaviyo(normalise("multiselect", tags, MOSCOW)).value == ["vip", "expo"]
    price = normalise("price", builtin_values("price", 46333), MOSCOW)
    assert to_mailchimp(price, MergeFieldSpec("number")).value == "46333"
    assert normalise("date_time", builtin_values("closed_at", 0), MOSCOW) == CLEARED
    assert normalise("text", builtin_values("loss_reason", None), MOSCOW) == CLEARED


@pytest.mark.parametrize(
    "values",
    [
        [{"value": None}, {"value": {"a": None}}],
        [{"value": [{"x": [None, {"y": None}]}]}],
        [{}],
        [{"value": "x" * 1_000_000}],
        [None],
        "text",
        42,
    ],
)
@pytest.mark.parametrize("kind", [*FIELD_TYPES, "org_legal_name"])
def test_no_odd_input_raises_and_every_outcome_is_a_value_or_a_skip(kind, values):
    value = normalise(kind, values, MOSCOW)
    for converted in [
        to_klaviyo(value),
        *(
            to_mailchimp(value, MergeFieldSpec(t))
            for t in ["text", "number", "date", "birthday", "dropdown", "phone", "url", "address"]
        ),
    ]:
        assert converted.cleared or converted.skip or converted.value is not None
        assert "object at 0x" not in repr(converted.value)


def test_a_huge_text_is_cut_for_mailchimp_and_refused_by_klaviyo():
    value = normalise("textarea", [{"value": "x" * 1_000_000}], MOSCOW)
    assert to_mailchimp(value, TEXT).value == "x" * 255
    assert to_klaviyo(value).skip


def test_unknown_keeps_the_raw_values_for_an_unknown_type():
    assert normalise("payer", [{"value": {"name": "X"}}], MOSCOW) == Unknown(
        "payer", [{"value": {"name": "X"}}], "unknown type"
    )
    assert Number(Decimal("1.5")) == normalise("numeric", [{"value": 1.5}], MOSCOW)
