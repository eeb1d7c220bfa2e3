"""Test-facing edits that any Kommo record can get: custom field values set and cleared, tags
added and removed, a responsible user, a company renamed, a lost lead's reason. Each real
change bumps the record's `updated_at` (so it moves into a later window filter); an edit that
changes nothing leaves it alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kommo_sync.sandbox.kommo.records import KommoRecords


class KommoEdits(KommoRecords):
    """Edits by entity type ("contacts", "leads", "companies") and record id."""

    def set_field_values(
        self,
        entity: str,
        record_id: int,
        field_id: int,
        values: Sequence[dict[str, Any]],
        *,
        at: int | None = None,
    ) -> None:
        """Store `values` (Kommo's `values` list for the field's type, taken as given)."""
        if not values:
            raise ValueError("no values: clear_field_values removes a field")
        with self.lock:
            record = self._records_of(entity)[record_id]
            self._require_field(entity, field_id)
            self._set_fields(record, {field_id: [dict(v) for v in values]}, entity)
            self._changed(entity, record, at)

    def clear_field_values(
        self, entity: str, record_id: int, field_id: int, *, at: int | None = None
    ) -> None:
        """Empty a field: its entry leaves `custom_fields_values` (null when none is left)."""
        with self.lock:
            record = self._records_of(entity)[record_id]
            self._require_field(entity, field_id)
            held = {e["field_id"] for e in record["custom_fields_values"] or []}
            if field_id in held:
                self._set_fields(record, {field_id: None}, entity)
                self._changed(entity, record, at)

    def _require_field(self, entity: str, field_id: int) -> None:
        if field_id not in self._field_set(entity):
            raise KeyError(f"no {entity} custom field {field_id}")

    def tag(self, entity: str, record_id: int, *names: str, at: int | None = None) -> None:
        """Add tags by name (created in the entity type's directory when new)."""
        with self.lock:
            record = self._records_of(entity)[record_id]
            held = self.entity_tags[entity].setdefault(record_id, [])
            added = [i for i in (self.add_tag(entity, n) for n in names) if i not in held]
            if added:
                held.extend(dict.fromkeys(added))
                self._changed(entity, record, at)

    def untag(self, entity: str, record_id: int, *names: str, at: int | None = None) -> None:
        """Remove tags by name from one record; the directory keeps them."""
        with self.lock:
            record = self._records_of(entity)[record_id]
            directory = self.tag_directory[entity]
            held = self.entity_tags[entity].get(record_id, [])
            kept = [i for i in held if directory[i]["name"] not in names]
            if len(kept) != len(held):
                self.entity_tags[entity][record_id] = kept
                self._changed(entity, record, at)

    def assign(self, entity: str, record_id: int, user_id: int, *, at: int | None = None) -> None:
        """Make a user responsible for a record (`responsible_user_id`)."""
        with self.lock:
            if user_id not in self.users:
                raise KeyError(f"no user {user_id}")
            record = self._records_of(entity)[record_id]
            if record["responsible_user_id"] != user_id:
                record["responsible_user_id"] = user_id
                self._changed(entity, record, at)

    def update_company(self, company_id: int, *, name: str, at: int | None = None) -> None:
        """Rename a company."""
        with self.lock:
            company = self.companies[company_id]
            company["name"] = name
            self._changed("companies", company, at)

    def set_loss_reason(
        self, lead_id: int, reason_id: int | None, *, at: int | None = None
    ) -> None:
        """Give a lead its loss reason (`loss_reason_id`), or take it away with None.

        Kept when the lead later leaves 143: whether Kommo clears it then is unconfirmed, and
        keeping it is the case a syncer must survive (read the reason only of lost leads)."""
        with self.lock:
            if reason_id is not None and reason_id not in self.loss_reasons:
                raise KeyError(f"no loss reason {reason_id}")
            lead = self.leads[lead_id]
            lead["loss_reason_id"] = reason_id
            self._changed("leads", lead, at)

    def _changed(self, entity: str, record: dict[str, Any], at: int | None) -> None:
        record["updated_at"] = self._timestamp(at)
        if entity == "contacts":
            self._index_contact(record)
        self._touch()
