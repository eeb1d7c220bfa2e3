"""The SQLite state's side of Kommo deletions: records Kommo no longer holds leave the mirror."""

from __future__ import annotations

from collections.abc import Iterable

from kommo_sync.state.sqlite_base import OwnedConnection


class LifecycleTables(OwnedConnection):
    """Contacts and leads dropped from the mirror and the queue; exits waiting to be made."""

    def drop_contacts(self, contact_ids: Iterable[int]) -> None:
        """A deleted contact leaves the mirror and the queue (its pushed records stay: they say
        what each destination holds) and waits for its exits, in the same transaction, so a
        crash never loses one. Its lead links stay, for a restore."""
        ids = [(cid,) for cid in contact_ids]
        self.db.executemany("DELETE FROM contacts WHERE id = ?", ids)
        self.db.executemany("DELETE FROM dirty WHERE contact_id = ?", ids)
        self.db.executemany("INSERT OR IGNORE INTO exits_to_make VALUES (?)", ids)

    def exits_to_make(self) -> list[int]:
        """Deleted contacts whose exit some destination has not confirmed yet."""
        return [row[0] for row in self.db.execute("SELECT contact_id FROM exits_to_make")]

    def clear_exits(self, contact_ids: Iterable[int]) -> None:
        """Their exits are made (or no longer wanted: the contact was restored)."""
        ids = [(cid,) for cid in contact_ids]
        self.db.executemany("DELETE FROM exits_to_make WHERE contact_id = ?", ids)

    def drop_leads(self, lead_ids: Iterable[int]) -> list[int]:
        """A deleted lead leaves the mirror; returns the contacts it was linked to."""
        ids = list(lead_ids)
        linked = self._select_in("SELECT contact_id FROM lead_contacts WHERE lead_id IN ({})", ids)
        self.db.executemany("DELETE FROM leads WHERE id = ?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM lead_contacts WHERE lead_id = ?", [(i,) for i in ids])
        return sorted({row[0] for row in linked})
