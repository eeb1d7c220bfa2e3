"""Contacts and leads deleted, restored and merged, each writing its event as Kommo reports it:
`contact_deleted`, `lead_deleted`, `contact_restored`, `lead_restored` and `entity_merged`, with
both value arrays empty. A deleted record is in the trash: not listed, not returned by id (only
`with=only_deleted` lists trashed leads), restorable with its links to records that still exist."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.kommo.records import KommoRecords
from kommo_sync.sandbox.kommo.rules import stored_values


class KommoLifecycle(KommoRecords):
    """Deletions, restores and merges, changed by tests."""

    def delete_contact(self, contact_id: int, *, at: int | None = None) -> None:
        """Trash a contact: its leads lose the link; records `contact_deleted`."""
        with self.lock:
            contact = self.contacts.pop(contact_id)
            for lead_id in contact["lead_ids"]:
                self._unlink(self.leads[lead_id], contact_id)
            self.deleted_contacts[contact_id] = contact
            self._record_event(
                "contact_deleted", contact_id, self._timestamp(at), [], [], "contact"
            )

    def restore_contact(self, contact_id: int, *, at: int | None = None) -> None:
        """Bring a contact back, linked again to its leads; records `contact_restored`."""
        with self.lock:
            contact = self.contacts[contact_id] = self.deleted_contacts.pop(contact_id)
            contact["lead_ids"] = [i for i in contact["lead_ids"] if i in self.leads]
            for lead_id in contact["lead_ids"]:
                self._link(self.leads[lead_id], contact_id)
            stamp = self._timestamp(at)
            self._record_event("contact_restored", contact_id, stamp, [], [], "contact")

    def delete_lead(self, lead_id: int, *, at: int | None = None) -> None:
        """Trash a lead: its contacts no longer list it; records `lead_deleted`."""
        with self.lock:
            lead = self.leads.pop(lead_id)
            stamp = self._timestamp(at)
            lead.update(is_deleted=True, updated_at=stamp)
            for contact_id in lead["contact_ids"]:
                self.contacts[contact_id]["lead_ids"].remove(lead_id)
            self.deleted_leads[lead_id] = lead
            self._record_event("lead_deleted", lead_id, stamp, [], [])

    def restore_lead(self, lead_id: int, *, at: int | None = None) -> None:
        """Bring a lead back to the contacts it had that still exist; records `lead_restored`."""
        with self.lock:
            lead = self.deleted_leads.pop(lead_id)
            stamp = self._timestamp(at)
            lead.update(is_deleted=False, updated_at=stamp)
            lead["contact_ids"] = [c for c in lead["contact_ids"] if c in self.contacts]
            if lead["main_contact_id"] not in lead["contact_ids"]:
                lead["main_contact_id"] = (lead["contact_ids"] or [None])[0]
            for contact_id in lead["contact_ids"]:
                self.contacts[contact_id]["lead_ids"].append(lead_id)
            self.leads[lead_id] = lead
            self._record_event("lead_restored", lead_id, stamp, [], [])

    def merge_contacts(
        self, survivor: int, loser: int, *, named: int | None = None, at: int | None = None
    ) -> None:
        """Merge `loser` into `survivor`: the survivor takes the loser's emails and leads, the
        loser is gone (not restorable). One `entity_merged` names `named` (the survivor unless
        told): the event does not say who survived."""
        with self.lock:
            gone = self.contacts.pop(loser)
            kept = self.contacts[survivor]
            for lead_id in list(gone["lead_ids"]):
                lead = self.leads[lead_id]
                self._unlink(lead, loser)
                self._link(lead, survivor)
            emails = stored_values(kept, self.email_field_id)
            extra = [e for e in stored_values(gone, self.email_field_id) if e not in emails]
            stamp = self._timestamp(at)
            self._apply_contact_changes(kept, {"extra_emails": emails[1:] + extra})
            kept["updated_at"] = stamp
            self._index_contact(kept)
            entity = survivor if named is None else named
            self._record_event("entity_merged", entity, stamp, [], [], "contact")

    def _unlink(self, lead: dict[str, Any], contact_id: int) -> None:
        if contact_id in lead["contact_ids"]:
            lead["contact_ids"].remove(contact_id)
        if lead["main_contact_id"] == contact_id:
            lead["main_contact_id"] = (lead["contact_ids"] or [None])[0]

    def _link(self, lead: dict[str, Any], contact_id: int) -> None:
        if contact_id not in lead["contact_ids"]:
            lead["contact_ids"].append(contact_id)
        contact = self.contacts[contact_id]
        if lead["id"] not in contact["lead_ids"]:
            contact["lead_ids"].append(lead["id"])
        if lead["main_contact_id"] is None:
            lead["main_contact_id"] = contact_id
