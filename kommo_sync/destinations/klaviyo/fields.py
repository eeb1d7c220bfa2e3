"""A person's field-map values as Klaviyo wants them, pure: mapped properties (with the counts
of what was skipped or noted), the `kommo_tags` array, SMS consent and the date of birth."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kommo_sync.destinations.klaviyo.field_config import FieldMap
from kommo_sync.fieldmap import Entry
from kommo_sync.fieldvalues import CLEARED, Day, Flag, Moment, Texts, Value, to_klaviyo
from kommo_sync.model import Person


def value_of(person: Person, entry: Entry) -> Value:
    """The entry's typed value; a source the person does not carry is no value (cleared)."""
    value: Value = person.values.get(entry.source.key, CLEARED)
    return value


def mapped_properties(person: Person, field_map: FieldMap) -> tuple[dict[str, Any], Counter[str]]:
    """Each `fields:` entry's property: None for a cleared value (unset when pushed before), a
    skipped value left out (Klaviyo keeps what it has), and the skips and notes counted."""
    properties: dict[str, Any] = {}
    counts: Counter[str] = Counter()
    for entry in field_map.properties:
        converted = to_klaviyo(value_of(person, entry))
        counts.update(f"fields.{note}" for note in converted.notes)
        if converted.skip is not None:
            counts[f"fields.skipped.{converted.skip}"] += 1
        else:
            properties[entry.target] = None if converted.cleared else converted.value
    return properties, counts


def kommo_tags(person: Person, field_map: FieldMap) -> list[str] | None:
    """The contact's (and the deciding lead's) tag names, sorted and once each; None without
    any, so a property pushed before is unset."""
    names = {
        text
        for entry in field_map.tags
        if isinstance(value := value_of(person, entry), Texts)
        for text in value.texts
    }
    return sorted(names) or None


def sms_consent(person: Person, field_map: FieldMap) -> bool:
    """Whether the SMS consent box is checked (an empty box is not consent)."""
    entry = field_map.sms_consent
    return entry is not None and value_of(person, entry) == Flag(True)


def birth_date(person: Person, field_map: FieldMap) -> str | None:
    """The birthday as an ISO date (`age_gated_date_of_birth`), or None without one."""
    if field_map.birthday is None:
        return None
    value = value_of(person, field_map.birthday)
    if isinstance(value, Day):
        return value.day.isoformat()
    if isinstance(value, Moment):
        return value.at.date().isoformat()
    return None
