"""The state's side of Kommo deletions: records Kommo no longer holds leave the mirror."""

from __future__ import annotations

from collections.abc import Iterable

from kommo_sync.state.sqlite_base import OwnedConnection


class LifecycleTables(OwnedConnection):
    """Contacts and leads dropped from the mirror and the queue; exits waiting to be made."""

    def drop_contacts(self, contact_ids: Iterable[int]) -> None:
        """A deleted contact leaves the mirror and the queue (its pushed records stay: they say
        what each destination holds) and waits for its exits, in the same transaction, so a
        crash never loses one. Its lead links stay, for a restore; its rejections are moot."""
        ids = [(cid,) for cid in contact_ids]
        self.db.executemany("DELETE FROM contacts WHERE id = ?", ids)
        self.db.executemany("DELETE FROM dirty WHERE contact_id = ?", ids)
        self.db.executemany("DELETE FROM rejections WHERE person_id = ?", ids)
        self.db.executemany("INSERT INTO exits_to_make VALUES (?) ON CONFLICT DO NOTHING", ids)

    def exits_to_make(self) -> list[int]:
        """Deleted contacts whose exit some destination has not confirmed yet."""
        return [row[0] for row in self.db.execute("SELECT contact_id FROM exits_to_make")]

    def clear_exits(self, contact_ids: Iterable[int]) -> None:
        """Their exits are made (or no longer wanted: the contact was restored)."""
        ids = [(cid,) for cid in contact_ids]
        self.db.executemany("DELETE FROM exits_to_make WHERE contact_id = ?", ids)

    def move_pushed(self, moves: Iterable[tuple[int, int]]) -> int:
        """What was pushed for a contact that left moves to the card that now stands for the
        same person (its same-email twin), at each destination where that card has nothing of
        its own; the leaving contact keeps nothing, so no exit of it touches the person.
        `moves` are (from, to) contact ids; returns how many records moved."""
        pairs = list(moves)
        moved = self.db.executemany(
            "UPDATE pushed SET person_id = ? WHERE person_id = ? AND destination NOT IN "
            "(SELECT destination FROM pushed WHERE person_id = ?)",
            [(to, old, to) for old, to in pairs],
        )
        self.db.executemany("DELETE FROM pushed WHERE person_id = ?", [(old,) for old, _ in pairs])
        return moved.rowcount

    def mirrored_contact_ids(self) -> list[int]:
        return [row[0] for row in self.db.execute("SELECT id FROM contacts ORDER BY id")]

    def drop_leads(self, lead_ids: Iterable[int]) -> list[int]:
        """A deleted lead leaves the mirror; returns the contacts it was linked to."""
        ids = list(lead_ids)
        linked = self._select_in("SELECT contact_id FROM lead_contacts WHERE lead_id IN ({})", ids)
        self.db.executemany("DELETE FROM leads WHERE id = ?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM lead_contacts WHERE lead_id = ?", [(i,) for i in ids])
        return sorted({row[0] for row in linked})
