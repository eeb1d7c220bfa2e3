"""The field map, once a run, before the destinations prepare: every destination's entries
resolved against the account's custom fields (a missing field is a config error naming the
entry), each destination handed its own, and the reader that gives people their values, with
the account's timezone and, when a map uses them, the users' names and the loss reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kommo_sync.destinations.base import Destination
from kommo_sync.field_reader import FieldReader
from kommo_sync.fieldmap import ENTITIES, Entry, Resolved, resolve
from kommo_sync.fieldvalues import KommoField
from kommo_sync.kommo import KommoClient
from kommo_sync.model import Catalog
from kommo_sync.tally import Tally

UTC = ZoneInfo("UTC")


def field_map(
    kommo: KommoClient,
    destinations: Sequence[Destination],
    catalog: Catalog,
    contact_fields: list[dict[str, Any]],
    tally: Tally,
) -> FieldReader | None:
    """The run's field reader (None when no destination maps a field)."""
    entries = {d.name: d.field_entries() for d in destinations}
    every = [entry for mine in entries.values() for entry in mine]
    if not every:
        return None
    fields = account_fields(kommo, every, contact_fields)
    resolved_by_key: dict[str, Resolved] = {}
    for destination in destinations:
        resolved = resolve(entries[destination.name], fields)
        destination.take_fields(resolved)
        resolved_by_key.update((r.key, r) for r in resolved)
    names = {entry.source.name for entry in every}
    return FieldReader(
        tuple(resolved_by_key.values()),
        _timezone(kommo, tally),
        catalog,
        users=kommo.user_names() if "responsible_user" in names else {},
        loss_reasons=kommo.loss_reasons() if "loss_reason" in names else {},
    )


def account_fields(
    kommo: KommoClient,
    entries: list[Entry],
    contact_fields: list[dict[str, Any]] | None = None,
) -> list[KommoField]:
    """The custom fields of each entity a custom-field entry names (a run has read the
    contacts' already and passes them; `check` has not)."""
    wanted = {ENTITIES[e.source.entity] for e in entries if not e.source.builtin}
    raw: dict[str, list[dict[str, Any]]] = {}
    if "contacts" in wanted:
        raw["contacts"] = kommo.custom_fields() if contact_fields is None else contact_fields
    raw.update((entity, kommo.entity_fields(entity)) for entity in wanted - {"contacts"})
    return [kommo_field(entity, item) for entity, items in raw.items() for item in items]


def kommo_field(entity: str, raw: dict[str, Any]) -> KommoField:
    enums = tuple(
        (int(e["id"]), str(e.get("value") or "")) for e in raw.get("enums") or [] if "id" in e
    )
    return KommoField(
        int(raw["id"]), str(raw.get("name") or ""), str(raw.get("type") or ""), entity, enums,
        raw.get("code"),
    )  # fmt: skip


def _timezone(kommo: KommoClient, tally: Tally) -> ZoneInfo:
    """The account's timezone; UTC, with a warning, when Kommo gives none this machine knows."""
    name = kommo.timezone()
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        tally.warn(f"Kommo's account timezone {name!r} is unknown here: dates are read in UTC")
        return UTC
