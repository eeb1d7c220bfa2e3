"""The field map of the `klaviyo:` section: `fields:` (Kommo sources → profile properties),
`kommo_tags`, `sms_consent_field`, `age_gated` and `birthday_field`.

Everything the plan reads from Kommo's fields travels the same way: as a field-map entry the
engine resolves and reads into `Person.values`. The keys that are not properties (the tags, the
SMS consent box, the birthday) become entries with an internal target (`@…`, a name no
property check lets through), so the plan stays a pure function of the person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kommo_sync.config_reader import Section
from kommo_sync.errors import ConfigError
from kommo_sync.fieldmap import Entry, Resolved, Source, parse_entries, parse_source

OWN_PROPERTIES = (
    "crm_stage",
    "crm_pipeline",
    "deal_amount",
    "kommo_deal_id",
    "kommo_contact_id",
    "kommo_tags",
)
"""Properties this tool sets itself; a `fields:` entry may not take them over."""

PROFILE_ATTRIBUTES = (
    "email",
    "phone_number",
    "external_id",
    "anonymous_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "location",
    "properties",
)
"""Klaviyo's own profile attributes: a custom property of the same name would never show."""

TAGS, SMS_CONSENT, BIRTHDAY = "@kommo_tags", "@sms_consent", "@birthday"
TAG_ENTITIES = ("contact", "lead")
BIRTHDAY_TYPES = ("birthday", "date")


@dataclass(frozen=True)
class FieldMap:
    """The section's field map as written: property entries and the internal ones."""

    properties: tuple[Entry, ...] = ()
    tags: tuple[Entry, ...] = ()
    sms_consent: Entry | None = None
    birthday: Entry | None = None
    age_gated: bool = False

    def entries(self) -> tuple[Entry, ...]:
        """Every entry the engine resolves and reads for people."""
        internal = (e for e in (self.sms_consent, self.birthday) if e is not None)
        return (*self.properties, *self.tags, *internal)

    def settings(self) -> dict[str, Any]:
        """What shapes the desired profile, only the parts configured: a config without a field
        map keeps the settings (and so the plans) of the releases before it."""
        found: dict[str, Any] = {}
        if self.properties:
            found["fields"] = [[e.source.key, e.target] for e in self.properties]
        if self.tags:
            found["kommo_tags"] = [e.source.entity for e in self.tags]
        if self.sms_consent:
            found["sms_consent_field"] = self.sms_consent.source.key
        if self.birthday:
            found["birthday_field"] = self.birthday.source.key
        if self.age_gated:
            found["age_gated"] = True
        return found


def parse_field_map(s: Section) -> FieldMap:
    """The field-map keys of the section; cross-key rules (age gating needs a birthday and SMS
    consent) name the key to fix."""
    age_gated = s.flag("age_gated", False)
    field_map = FieldMap(
        properties=parse_entries(s, "fields", check_property),
        tags=_tag_entries(s),
        sms_consent=_internal(s, "sms_consent_field", SMS_CONSENT),
        birthday=_internal(s, "birthday_field", BIRTHDAY),
        age_gated=age_gated,
    )
    if age_gated and field_map.sms_consent is None:
        raise ConfigError(s.key("age_gated"), "gates SMS consent: set klaviyo.sms_consent_field")
    if age_gated and field_map.birthday is None:
        raise ConfigError(
            s.key("birthday_field"),
            "required with age_gated: Klaviyo needs a date of birth for SMS consent",
        )
    return field_map


def check_property(where: str, name: str) -> str:
    """A property name Klaviyo shows as a custom property and this tool does not set itself."""
    if name in OWN_PROPERTIES:
        raise ConfigError(where, f"{name} is a property kommo-sync sets itself; choose another")
    if name in PROFILE_ATTRIBUTES or name.startswith("$"):
        raise ConfigError(
            where, f"{name} is a Klaviyo profile attribute, not a custom property; choose another"
        )
    if name.startswith("@"):
        raise ConfigError(where, "a property name may not start with @")
    return name


def _tag_entries(s: Section) -> tuple[Entry, ...]:
    """`kommo_tags: {from: [contact, lead]}` as entries for `contact.tags` and `lead.tags`."""
    if not s.has("kommo_tags"):
        return ()
    tags = s.section("kommo_tags")
    tags.only("from")
    where = tags.key("from")
    entities = tags.raw.get("from", ["contact"])
    if isinstance(entities, str):
        entities = [entities]
    if not isinstance(entities, list) or not entities:
        raise ConfigError(where, "must list contact, lead or both")
    for entity in entities:
        if entity not in TAG_ENTITIES:
            raise ConfigError(where, f"{entity!r} is not one of contact, lead")
    chosen = [e for e in TAG_ENTITIES if e in entities]
    return tuple(Entry(Source(e, "tags", True), TAGS, where) for e in chosen)


def _internal(s: Section, name: str, target: str) -> Entry | None:
    """A contact field named by its name or id, as an entry with an internal target."""
    value = s.name_or_id(name)
    if value is None:
        return None
    where = s.key(name)
    return Entry(parse_source(where, f"contact.{value}"), target, where)


def check_resolved(resolved: Iterable[Resolved]) -> None:
    """The SMS consent must be a checkbox and the birthday a day: a config error otherwise."""
    for item in resolved:
        target, kind = item.entry.target, item.type
        if target == SMS_CONSENT and kind != "checkbox":
            raise ConfigError(item.entry.where, f"must name a checkbox field, not a {kind} field")
        if target == BIRTHDAY and kind not in BIRTHDAY_TYPES:
            raise ConfigError(
                item.entry.where, f"must name a birthday or date field, not a {kind} field"
            )
