"""Typed values → Mailchimp merge-field values, and which merge type a Kommo field gets.

Mailchimp's merge types (spec `Merge Field.type`): text, number, address, phone, date, url,
imageurl, radio, dropdown, birthday, zip; `options` carry date_format, choices and phone_format.
Values go as strings (an address as an object); "" clears a merge field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from kommo_sync.fieldvalues.parsing import format_number
from kommo_sync.fieldvalues.shapes import KommoField
from kommo_sync.fieldvalues.values import (
    TRUNCATED,
    UNKNOWN_SHAPE,
    Cleared,
    Converted,
    Day,
    Flag,
    Moment,
    Number,
    Structured,
    Text,
    Texts,
    Unknown,
    Value,
    sent,
    skipped,
)

TEXT_LIMIT = 255
YES, NO = "Yes", "No"
DATE_FORMAT, BIRTHDAY_FORMAT = "MM/DD/YYYY", "MM/DD"


@dataclass(frozen=True)
class MergeFieldSpec:
    """A merge field's type and the options that shape its values."""

    type: str
    date_format: str | None = None
    choices: tuple[str, ...] = ()
    phone_format: str | None = None


_NUMBERS = {"numeric", "price", "monetary"}
_CHOICES = {"select", "radiobutton", "category"}
_DATES = {"date", "date_time", "birthday"}


def mailchimp_merge_type(field: KommoField) -> MergeFieldSpec:
    """The merge field to create for a Kommo field: the type that fits its values.

    Addresses become text: Mailchimp's address type refuses an address without a state or a
    zip, which most non-US addresses are; an existing address merge field is still used."""
    kind = field.type
    if kind in _NUMBERS:
        return MergeFieldSpec("number")
    if kind in {"date", "date_time"}:
        return MergeFieldSpec("date", date_format=DATE_FORMAT)
    if kind == "birthday":
        return MergeFieldSpec("birthday", date_format=BIRTHDAY_FORMAT)
    if kind in _CHOICES:
        return MergeFieldSpec(
            "radio" if kind == "radiobutton" else "dropdown", choices=field.choices
        )
    if kind == "url":
        return MergeFieldSpec("url")
    if kind == "multitext" and field.code == "PHONE":
        return MergeFieldSpec("phone", phone_format="International")
    return MergeFieldSpec("text")


def missing_choices(existing: MergeFieldSpec, field: KommoField) -> tuple[str, ...]:
    """The Kommo choices a dropdown or radio merge field lacks: the ones to add to it."""
    if existing.type not in {"dropdown", "radio"}:
        return ()
    wanted = (YES, NO) if field.type == "checkbox" else field.choices
    return tuple(choice for choice in wanted if choice not in existing.choices)


def mailchimp_can_hold(existing: MergeFieldSpec, field: KommoField) -> bool:
    """Whether an existing merge field of another type can take this field's values.

    A dropdown or radio holds a choice field (or a checkbox's Yes/No) once every choice is
    there: add `missing_choices` first. Anything else is a config error for the caller."""
    kind, target = field.type, existing.type
    if target in {"dropdown", "radio"}:
        fits = kind in _CHOICES or kind == "checkbox"
        return fits and not missing_choices(existing, field)
    holders = {
        "text": True,
        "number": kind in _NUMBERS,
        "date": kind in _DATES,
        "birthday": kind in _DATES,
        "url": kind == "url",
        "phone": kind in {"multitext", "text"},
        "address": kind == "smart_address",
    }
    return holders.get(target, False)


def to_mailchimp(value: Value, spec: MergeFieldSpec) -> Converted:
    """The merge-field value for one typed value, or a clear, or a skip with its reason."""
    if isinstance(value, Cleared):
        return Converted(value="", cleared=True)
    if isinstance(value, Unknown):
        return _unknown(value, spec)
    converter = _CONVERTERS.get(spec.type)
    if converter is None:
        return skipped(f"merge type {spec.type} is not written by kommo-sync")
    return converter(value, spec)


def compact_json(data: Any) -> str:
    """JSON as short as it gets, non-ASCII kept as is (it counts against the 255 bytes)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


def unknown_object(value: Unknown) -> dict[str, Any]:
    """What an unknown type or shape is sent as: its type and the raw values, untouched."""
    return {"kommo_type": value.field_type, "values": value.raw}


def _unknown(value: Unknown, spec: MergeFieldSpec) -> Converted:
    if spec.type != "text":
        return skipped(f"{value.reason} for a {spec.type} merge field")
    converted = _cut(compact_json(unknown_object(value)))
    return Converted(value=converted.value, notes=(UNKNOWN_SHAPE, *converted.notes))


def as_line(value: Value) -> str | None:
    """The value as one line of text (what a text merge field shows)."""
    if isinstance(value, Text):
        return value.text
    if isinstance(value, Number):
        return format_number(value.number)
    if isinstance(value, Flag):
        return YES if value.flag else NO
    if isinstance(value, Day):
        return value.day.isoformat()
    if isinstance(value, Moment):
        return value.at.isoformat()
    if isinstance(value, Texts):
        return ", ".join(value.texts)
    if isinstance(value, Structured):
        return value.summary or compact_json(value.data)
    return None


def _cut(text: str) -> Converted:
    """Text within 255 bytes of UTF-8, cut on a character boundary, noted when cut."""
    encoded = text.encode("utf-8")
    if len(encoded) <= TEXT_LIMIT:
        return sent(text)
    return sent(encoded[:TEXT_LIMIT].decode("utf-8", "ignore"), TRUNCATED)


def _text(value: Value, spec: MergeFieldSpec) -> Converted:
    line = as_line(value)
    return _cut(line) if line is not None else skipped("not text")


def _number(value: Value, spec: MergeFieldSpec) -> Converted:
    if isinstance(value, Number):
        return sent(format_number(value.number))
    return skipped("not a number")


def _day_of(value: Value) -> date | None:
    if isinstance(value, Day):
        return value.day
    return value.at.date() if isinstance(value, Moment) else None


def _date(value: Value, spec: MergeFieldSpec) -> Converted:
    day = _day_of(value)
    if day is None:
        return skipped("not a date")
    if spec.date_format == "DD/MM/YYYY":
        return sent(f"{day.day:02d}/{day.month:02d}/{day.year:04d}")
    if spec.date_format in (None, "MM/DD/YYYY"):
        return sent(f"{day.month:02d}/{day.day:02d}/{day.year:04d}")
    return sent(day.isoformat())


def _birthday(value: Value, spec: MergeFieldSpec) -> Converted:
    day = _day_of(value)
    if day is None:
        return skipped("not a date")
    if spec.date_format == "DD/MM":
        return sent(f"{day.day:02d}/{day.month:02d}")
    return sent(f"{day.month:02d}/{day.day:02d}")


def _choice(value: Value, spec: MergeFieldSpec) -> Converted:
    if isinstance(value, Texts) and len(value.texts) > 1:
        return skipped("several choices for a single-choice merge field")
    line = as_line(value)
    if line is None or line not in spec.choices:
        return skipped("choice not in the merge field")
    return sent(line)


def _whole(value: Value, spec: MergeFieldSpec) -> Converted:
    """Phone and URL: the first entry, whole; a cut number or link would be a wrong one."""
    line = value.texts[0] if isinstance(value, Texts) and value.texts else as_line(value)
    if not isinstance(value, Text | Texts) or line is None:
        return skipped(f"not a {spec.type}")
    if len(line.encode("utf-8")) > TEXT_LIMIT:
        return skipped(f"{spec.type} longer than {TEXT_LIMIT} bytes")
    return sent(line)


def _address(value: Value, spec: MergeFieldSpec) -> Converted:
    if not isinstance(value, Structured) or value.kind != "address":
        return skipped("not an address")
    parts = value.data if isinstance(value.data, dict) else {}
    names = {"address_line_1": "addr1", "address_line_2": "addr2", "city": "city"}
    names |= {"state": "state", "zip": "zip", "country": "country"}
    address = {names[key]: text for key, text in parts.items() if key in names}
    if not all(address.get(key) for key in ("addr1", "city", "state", "zip")):
        return skipped("address lacks addr1, city, state or zip")
    return sent(address)


_CONVERTERS = {
    "text": _text,
    "number": _number,
    "date": _date,
    "birthday": _birthday,
    "dropdown": _choice,
    "radio": _choice,
    "phone": _whole,
    "url": _whole,
    "address": _address,
}
