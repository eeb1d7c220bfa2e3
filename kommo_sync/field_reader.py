"""What a field map reads for one person: each mapped source of the deciding contact, its
deciding lead and its company, typed by `fieldvalues.normalise` in the account's timezone.

Built once a run from the resolved entries of every destination (`FieldReader.of`), with what
the built-in names need: pipeline and status names from the catalog, the responsible users'
names and the loss reasons (read from Kommo only when a map uses them). A source missing on the
person (no deciding lead, no company, a field Kommo sent no value for) is `CLEARED`: unset
downstream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from kommo_sync.fieldmap import Resolved
from kommo_sync.fieldvalues import CLEARED, Value, builtin_values, normalise
from kommo_sync.model import Catalog, Company, Contact, Lead

Record = Contact | Lead | Company


@dataclass(frozen=True)
class FieldReader:
    resolved: tuple[Resolved, ...]
    tz: ZoneInfo
    catalog: Catalog = field(default_factory=Catalog)
    users: Mapping[int, str] = field(default_factory=dict)
    loss_reasons: Mapping[int, str] = field(default_factory=dict)

    @property
    def needs_companies(self) -> bool:
        return any(r.entry.source.entity == "company" for r in self.resolved)

    def values(
        self, contact: Contact, lead: Lead | None, companies: Mapping[int, Company]
    ) -> dict[str, Value]:
        """Every mapped source's value, by source key (`contact.Industry`)."""
        company = companies.get(contact.company_id) if contact.company_id else None
        records: dict[str, Record | None] = {"contact": contact, "lead": lead, "company": company}
        return {r.key: self._value(r, records[r.entry.source.entity]) for r in self.resolved}

    def _value(self, resolved: Resolved, record: Record | None) -> Value:
        if record is None:
            return CLEARED
        if resolved.field is not None:
            return normalise(
                resolved.field.type, record.custom.get(str(resolved.field.id)), self.tz
            )
        name = resolved.entry.source.name
        return normalise(resolved.type, builtin_values(name, self._builtin(record, name)), self.tz)

    def _builtin(self, record: Record, name: str) -> object:
        """A built-in attribute's raw value; names looked up where Kommo gives an id."""
        if name == "name" and isinstance(record, Contact):
            return f"{record.first_name} {record.last_name}".strip()
        if name == "email" and isinstance(record, Contact):
            return record.email
        if name == "tags":
            return list(record.tags)
        if name == "responsible_user":
            return self.users.get(record.responsible_user_id or 0)
        if isinstance(record, Lead):
            looked_up = {
                "pipeline": lambda lead: self.catalog.pipeline_name(lead.pipeline_id),
                "status": lambda lead: self.catalog.status_name(lead.pipeline_id, lead.status_id),
                "loss_reason": lambda lead: self.loss_reasons.get(lead.loss_reason_id or 0),
            }.get(name)
            if looked_up is not None:
                return looked_up(record)
        return getattr(record, name, None)
