"""The SQLite state's side of Kommo deletions: records Kommo no longer holds leave the mirror."""

from __future__ import annotations

from collections.abc import Iterable

from kommo_sync.state.sqlite_base import OwnedConnection


class LifecycleTables(OwnedConnection):
    """Contacts and leads dropped from the mirror and the queue."""

    def drop_contacts(self, contact_ids: Iterable[int]) -> None:
        """A deleted contact leaves the mirror and the queue (its pushed records stay: they say
        what each destination holds). Its lead links stay, for a restore."""
        ids = [(cid,) for cid in contact_ids]
        self.db.executemany("DELETE FROM contacts WHERE id = ?", ids)
        self.db.executemany("DELETE FROM dirty WHERE contact_id = ?", ids)

    def drop_leads(self, lead_ids: Iterable[int]) -> list[int]:
        """A deleted lead leaves the mirror; returns the contacts it was linked to."""
        ids = list(lead_ids)
        linked = self._select_in("SELECT contact_id FROM lead_contacts WHERE lead_id IN ({})", ids)
        self.db.executemany("DELETE FROM leads WHERE id = ?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM lead_contacts WHERE lead_id = ?", [(i,) for i in ids])
        return sorted({row[0] for row in linked})
