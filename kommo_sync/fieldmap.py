"""The field map's source grammar, shared by every destination's `fields:` list.

An entry is `{from: <entity>.<name>, to: <target>}`: the entity is `contact`, `lead` (the lead
whose stage decided the person) or `company`; the name is one of that entity's built-in
attributes, or a custom field by its exact name or its numeric id. Built-in names are reserved:
a custom field that shares one is named by its id. The target's grammar is the destination's
(a Mailchimp merge tag, a Klaviyo property name), checked by the callback it passes.

Parsing (`parse_entries`) needs no Kommo; `resolve` matches custom field names against the
account's fields once per run and names the entry, with a "did you mean", when one is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kommo_sync.config_reader import Section, did_you_mean
from kommo_sync.errors import ConfigError
from kommo_sync.fieldvalues import KommoField, builtin_type

ENTITIES = {"contact": "contacts", "lead": "leads", "company": "companies"}
BUILT_IN: Mapping[str, tuple[str, ...]] = {
    "contact": (
        "name", "first_name", "last_name", "email", "phone", "responsible_user", "created_at",
        "updated_at", "tags",
    ),
    "lead": (
        "name", "price", "pipeline", "status", "responsible_user", "created_at", "updated_at",
        "closed_at", "tags", "loss_reason",
    ),
    "company": ("name", "responsible_user", "created_at", "updated_at", "tags"),
}  # fmt: skip


@dataclass(frozen=True)
class Source:
    """Where a value comes from: a built-in attribute, or a custom field (named or by id)."""

    entity: str
    name: str
    builtin: bool

    @property
    def key(self) -> str:
        """How people carry the value, and how reports name the source."""
        return f"{self.entity}.{self.name}"


@dataclass(frozen=True)
class Entry:
    """One line of a `fields:` list, as written (`where` is its config key path)."""

    source: Source
    target: str
    where: str


@dataclass(frozen=True)
class Resolved:
    """An entry whose custom field was found in the account (`field` None for a built-in)."""

    entry: Entry
    field: KommoField | None

    @property
    def key(self) -> str:
        return self.entry.source.key

    @property
    def type(self) -> str:
        """The Kommo field type its values convert as (a built-in's is fixed)."""
        if self.field is not None:
            return self.field.type
        source = self.entry.source
        return builtin_type(ENTITIES[source.entity], source.name) or "text"

    @property
    def kommo_field(self) -> KommoField:
        """The field as the conversions take it (a built-in as a field of its type)."""
        if self.field is not None:
            return self.field
        source = self.entry.source
        return KommoField(0, source.name, self.type, ENTITIES[source.entity])


def parse_source(where: str, text: Any) -> Source:
    """`contact.Industry`, `lead.price`, `company.123456` → Source; a config error otherwise."""
    if not isinstance(text, str) or "." not in text:
        raise ConfigError(where, "must be <contact|lead|company>.<attribute or custom field>")
    entity, name = text.split(".", 1)
    if entity not in ENTITIES:
        raise ConfigError(where, f"unknown entity {entity!r}; one of contact, lead, company")
    name = name.strip()
    if not name:
        raise ConfigError(where, "names no attribute or custom field after the dot")
    return Source(entity, name, name in BUILT_IN[entity])


def parse_entries(
    s: Section, name: str, check_target: Callable[[str, str], str]
) -> tuple[Entry, ...]:
    """The `fields:` list of a destination's section; `check_target(where, target)` returns the
    target as the destination spells it or raises a ConfigError naming `where`."""
    entries = tuple(s.items(name, lambda where, item: _entry(where, item, check_target)))
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.target in seen:
            raise ConfigError(
                entry.where, f"{entry.target} is already the target of {seen[entry.target]}"
            )
        seen[entry.target] = entry.where
    return entries


def _entry(where: str, item: Any, check_target: Callable[[str, str], str]) -> Entry:
    if not isinstance(item, dict) or set(item) != {"from", "to"}:
        raise ConfigError(where, "must be {from: <entity>.<name>, to: <target>}")
    source = parse_source(f"{where}.from", item["from"])
    target = item["to"]
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(f"{where}.to", "must name a target")
    return Entry(source, check_target(f"{where}.to", target.strip()), where)


def resolve(entries: Iterable[Entry], fields: Iterable[KommoField]) -> tuple[Resolved, ...]:
    """Match each custom-field entry against the account's fields: by id, else by exact name;
    a config error names the entry, and the closest name, when none matches or two share it."""
    by_entity: dict[str, list[KommoField]] = {}
    for found in fields:
        by_entity.setdefault(found.entity, []).append(found)  # contacts, leads, companies
    return tuple(
        Resolved(entry, None if entry.source.builtin else _field(entry, by_entity))
        for entry in entries
    )


def _field(entry: Entry, by_entity: Mapping[str, list[KommoField]]) -> KommoField:
    source = entry.source
    candidates = by_entity.get(ENTITIES[source.entity], [])
    if source.name.isdigit():
        matches = [f for f in candidates if f.id == int(source.name)]
    else:
        matches = [f for f in candidates if f.name == source.name]
    if len(matches) == 1:
        return matches[0]
    where = f"{entry.where}.from"
    if matches:
        ids = ", ".join(str(f.id) for f in matches)
        raise ConfigError(
            where,
            f"{len(matches)} {source.entity} fields are named {source.name!r}; "
            f"name one by its id ({ids})",
        )
    names = [f.name for f in candidates] + list(BUILT_IN[source.entity])
    hint = _case_hint(source.name, names) or did_you_mean(source.name, names)
    raise ConfigError(where, f"Kommo has no {source.entity} field {source.name!r}{hint}")


def _case_hint(name: str, names: list[str]) -> str:
    """Names match exactly; one that differs only in case is the likeliest meaning."""
    same = [n for n in names if n.lower() == name.lower()]
    return f"; did you mean {same[0]}? (names match exactly)" if same else ""
