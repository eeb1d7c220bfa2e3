"""The state's side of `rejections`, `retry` and `rejections --clear`: the rejections as
a user reads them, acknowledging them, and re-queueing them for the next run."""

from __future__ import annotations

from typing import Any

from kommo_sync.state.sqlite_base import OwnedConnection

REJECTION_KEYS = (
    "destination",
    "contact_id",
    "email",
    "kind",
    "reason",
    "first_seen",
    "run_id",
    "acknowledged_at",
    "retry_queued",
)


def _where(
    contact_id: int | None, destination: str | None, extra: str = ""
) -> tuple[str, tuple[Any, ...]]:
    """The filter every rejection command shares: a contact, a destination, or all."""
    clauses = [extra] if extra else []
    values: list[Any] = []
    if contact_id is not None:
        clauses.append("person_id = ?")
        values.append(contact_id)
    if destination is not None:
        clauses.append("destination = ?")
        values.append(destination)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", tuple(values)


class RejectionTables(OwnedConnection):
    """Rejections listed, acknowledged and re-queued."""

    def rejection_list(
        self, contact_id: int | None = None, destination: str | None = None
    ) -> list[dict[str, Any]]:
        """Every recorded rejection (acknowledged ones too), oldest first."""
        where, values = _where(contact_id, destination)
        rows = self.db.execute(
            "SELECT destination, person_id, email, kind, reason, at, run_id, acknowledged_at, "
            f"retry FROM rejections{where} ORDER BY at, destination, person_id",
            values,
        )
        return [
            {**dict(zip(REJECTION_KEYS, row, strict=True)), "retry_queued": bool(row[8])}
            for row in rows
        ]

    def acknowledge_rejections(
        self, at: int, contact_id: int | None = None, destination: str | None = None
    ) -> int:
        """Mark rejections acknowledged: held until the contact's data changes."""
        where, values = _where(contact_id, destination, "acknowledged_at IS NULL")
        cursor = self.db.execute(
            f"UPDATE rejections SET acknowledged_at = ?, retry = 0{where}", (at, *values)
        )
        return cursor.rowcount

    def queue_retries(
        self, permanent: bool, contact_id: int | None = None, destination: str | None = None
    ) -> list[dict[str, Any]]:
        """Re-queue rejected people (transient ones; permanent ones too when asked): the next run
        plans them again though their data is unchanged; a refused exit of a contact that left
        Kommo goes back in the exits queue. Returns the rows re-queued."""
        kinds = "kind IN ('transient', 'permanent')" if permanent else "kind = 'transient'"
        chosen = [
            row
            for row in self.rejection_list(contact_id, destination)
            if row["kind"] == "transient" or permanent
        ]
        where, values = _where(contact_id, destination, kinds)
        self.db.execute(f"UPDATE rejections SET retry = 1, acknowledged_at = NULL{where}", values)
        ids = {row["contact_id"] for row in chosen}
        mirrored = {
            row[0] for row in self._select_in("SELECT id FROM contacts WHERE id IN ({})", ids)
        }
        self.db.executemany(
            "INSERT INTO dirty VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(cid, self._seq) for cid in mirrored],
        )
        self.db.executemany(
            "INSERT INTO exits_to_make VALUES (?) ON CONFLICT DO NOTHING",
            [(cid,) for cid in ids - mirrored],
        )
        return chosen
