"""`kommo-sync check` for the field maps: every entry of every destination's `fields:` found in
the Kommo account, as the run would resolve it (GETs only: the account's custom fields)."""

from __future__ import annotations

from kommo_sync.checklist import Check, Failed, vendor_failures
from kommo_sync.clock import Clock
from kommo_sync.config import Config
from kommo_sync.errors import ConfigError
from kommo_sync.exits import EXIT_CONFIG
from kommo_sync.field_setup import account_fields
from kommo_sync.fieldmap import Entry, Resolved, resolve
from kommo_sync.fieldvalues import KommoField
from kommo_sync.kommo import KommoClient, kommo_http


def field_map_checks(config: Config, clock: Clock, timeout: float) -> list[Check]:
    """One check per entry; none when no destination maps a field."""
    from kommo_sync.app import build_destinations  # app builds the engine, which needs checks

    entries = [e for d in build_destinations(config, clock) for e in d.field_entries()]
    if not entries:
        return []
    client = KommoClient(kommo_http(config.kommo, clock, timeout))
    try:
        with vendor_failures("kommo", "token", "field maps not checked"):
            fields = account_fields(client, entries)
    except Failed as failed:
        return [failed.check]
    return [_entry_check(entry, fields) for entry in entries]


def _entry_check(entry: Entry, fields: list[KommoField]) -> Check:
    try:
        (resolved,) = resolve([entry], fields)
    except ConfigError as exc:
        return Check(exc.key, exc.problem, EXIT_CONFIG)
    return Check(f"{entry.where}.from", f"{_found(resolved)} → {entry.target}")


def _found(resolved: Resolved) -> str:
    source = resolved.entry.source
    if resolved.field is None:
        return f"the {source.entity}'s {source.name} (built in, as {resolved.type})"
    field = resolved.field
    return f"{source.entity} field {field.name!r} ({field.type}, id {field.id})"
