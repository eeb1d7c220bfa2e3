"""The state's record of what each destination holds: pushed records, rejections,
the destination's own memory, deal events sent, our own unsubscribes and consent to clear."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kommo_sync.state.rows import encode_sorted
from kommo_sync.state.sqlite_base import OwnedConnection
from kommo_sync.state.store import EventRow


class OutcomeTables(OwnedConnection):
    """What the destinations were sent and what they answered."""

    # what destinations hold --------------------------------------------------------------
    def pushed(self, destination: str, person_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        return {
            row[0]: json.loads(row[1])
            for row in self._select_in(
                "SELECT person_id, data FROM pushed WHERE destination = ? AND person_id IN ({})",
                person_ids,
                prefix=(destination,),
            )
        }

    def pushed_ids(self, destination: str) -> list[int]:
        """Every person pushed to the destination who is still in the mirror (a deleted
        contact's record stays for its exit, but it is no longer managed)."""
        return [
            row[0]
            for row in self.db.execute(
                "SELECT person_id FROM pushed JOIN contacts ON contacts.id = person_id "
                "WHERE destination = ? ORDER BY person_id",
                (destination,),
            )
        ]

    def record_pushed(
        self, destination: str, rows: Iterable[tuple[int, str, dict[str, Any]]]
    ) -> None:
        self.db.executemany(
            "INSERT INTO pushed VALUES (?, ?, ?, ?) "
            "ON CONFLICT(destination, person_id) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, data = excluded.data",
            [(destination, pid, fp, encode_sorted(data)) for pid, fp, data in rows],
        )

    def set_pushed_status(self, destination: str, person_ids: Iterable[int], status: str) -> None:
        """Record a status the destination reported (e.g. unsubscribed) on what we pushed."""
        self.db.executemany(
            f"UPDATE pushed SET data = {self.dialect.json_set_status('data')} "
            "WHERE destination = ? AND person_id = ?",
            [(status, destination, pid) for pid in person_ids],
        )

    def rejections(self, destination: str, person_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(kind, fingerprint) of the recorded rejections among `person_ids`; the kind reads
        `acknowledged` once cleared and `retry` once re-queued by `retry`."""
        return {
            row[0]: (row[1], row[2])
            for row in self._select_in(
                "SELECT person_id, CASE WHEN acknowledged_at IS NOT NULL THEN 'acknowledged' "
                "WHEN retry <> 0 THEN 'retry' ELSE kind END, fingerprint FROM rejections "
                "WHERE destination = ? AND person_id IN ({})",
                person_ids,
                prefix=(destination,),
            )
        }

    def record_rejection(
        self,
        destination: str,
        person_id: int,
        kind: str,
        reason: str,
        fingerprint: str,
        email: str | None,
        run_id: int | None,
        at: int,
    ) -> None:
        """Store a rejection; a transient one that repeats keeps the time it was first seen. A new
        rejection is news: it is no longer acknowledged nor re-queued."""
        self.db.execute(
            "INSERT INTO rejections (destination, person_id, kind, reason, fingerprint, email, "
            "run_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(destination, person_id) DO UPDATE "
            "SET kind = excluded.kind, reason = excluded.reason, "
            "acknowledged_at = NULL, retry = 0, "
            "fingerprint = excluded.fingerprint, email = excluded.email, run_id = excluded.run_id, "
            "at = CASE WHEN rejections.kind = excluded.kind THEN rejections.at "
            "ELSE excluded.at END",
            (destination, person_id, kind, reason, fingerprint, email, run_id, at),
        )

    def clear_rejections(self, destination: str, person_ids: Iterable[int]) -> None:
        self._execute_in(
            "DELETE FROM rejections WHERE destination = ? AND person_id IN ({})",
            person_ids,
            prefix=(destination,),
        )

    def requeue_transient_rejections(self) -> int:
        """Transient rejections are retried by the next run: their contacts go back in the queue
        (acknowledged ones wait until the contact changes)."""
        cursor = self.db.execute(
            "INSERT INTO dirty SELECT person_id, ? FROM rejections "
            "WHERE kind = 'transient' AND acknowledged_at IS NULL ON CONFLICT DO NOTHING",
            (self._seq,),
        )
        return cursor.rowcount

    def pending_rejections(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT destination, person_id, kind, reason, email, at FROM rejections "
            "WHERE acknowledged_at IS NULL ORDER BY at DESC LIMIT ?",
            (limit,),
        )
        keys = ("destination", "contact_id", "kind", "reason", "email", "at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def rejection_counts(self) -> dict[str, int]:
        """How many of each kind; acknowledged ones (`rejections --clear`) on their own."""
        return dict(
            self.db.execute(
                "SELECT CASE WHEN acknowledged_at IS NULL THEN kind ELSE 'acknowledged' END AS k, "
                "COUNT(*) FROM rejections GROUP BY k"
            )
        )

    def held_back(self) -> list[dict[str, Any]]:
        """Transient rejections per destination: how many, since when (the oldest)."""
        rows = self.db.execute(
            "SELECT destination, COUNT(*), MIN(at) FROM rejections WHERE kind = 'transient' "
            "GROUP BY destination ORDER BY destination"
        )
        return [{"destination": d, "count": n, "since": at} for d, n, at in rows]

    # Kommo consent boxes to uncheck after an unsubscribe (feedback.consent_field_write) -----
    def queue_consent_clear(self, contact_ids: Iterable[int]) -> None:
        self.db.executemany(
            "INSERT INTO consent_to_clear VALUES (?) ON CONFLICT DO NOTHING",
            [(cid,) for cid in contact_ids],
        )

    def consent_clear_queue(self) -> list[int]:
        return [
            row[0]
            for row in self.db.execute(
                "SELECT contact_id FROM consent_to_clear ORDER BY contact_id"
            )
        ]

    def consent_cleared(self, contact_ids: Iterable[int]) -> None:
        self._execute_in("DELETE FROM consent_to_clear WHERE contact_id IN ({})", contact_ids)

    # our own unsubscribes ----------------------------------------------------------------
    def note_own_optouts(self, destination: str, emails: Iterable[str], at: int) -> None:
        self.db.executemany(
            "INSERT INTO own_optouts VALUES (?, ?, ?) "
            "ON CONFLICT(destination, email) DO UPDATE SET at = excluded.at",
            [(destination, email.lower(), at) for email in emails],
        )

    def own_optouts(self, destination: str, emails: Iterable[str]) -> dict[str, int]:
        """When we unsubscribed these addresses ourselves (lower-cased email → time)."""
        return dict(
            self._select_in(
                "SELECT email, at FROM own_optouts WHERE destination = ? AND email IN ({})",
                [e.lower() for e in emails],
                prefix=(destination,),
            )
        )

    # per-destination memory (managed tags, created merge fields, remote ids) ----------------
    def meta(self, destination: str, key: str, default: Any = None) -> Any:
        row = self.db.execute(
            "SELECT value FROM destination_meta WHERE destination = ? AND key = ?",
            (destination, key),
        ).fetchone()
        return json.loads(row[0]) if row else default

    def metas(self, destination: str) -> dict[str, Any]:
        """Everything a destination remembers, by key."""
        return {
            key: json.loads(value)
            for key, value in self.db.execute(
                "SELECT key, value FROM destination_meta WHERE destination = ?", (destination,)
            )
        }

    def set_meta(self, destination: str, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO destination_meta VALUES (?, ?, ?) "
            "ON CONFLICT(destination, key) DO UPDATE SET value = excluded.value",
            (destination, key, json.dumps(value, sort_keys=True)),
        )

    # deal events: what was sent, and what is in flight with an unknown outcome ----------------
    def event_statuses(self, destination: str, event_ids: Iterable[str]) -> dict[str, str]:
        return dict(
            self._select_in(
                "SELECT event_id, status FROM sent_events WHERE destination = ? "
                "AND event_id IN ({})",
                event_ids,
                prefix=(destination,),
            )
        )

    def mark_events(
        self,
        destination: str,
        status: str,
        at: int,
        rows: Iterable[EventRow],
    ) -> None:
        """Upsert (event_id, person_id, email, action, payload, reason) rows with one status."""
        self.db.executemany(
            "INSERT INTO sent_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(destination, event_id) "
            "DO UPDATE SET status = excluded.status, at = excluded.at, reason = excluded.reason",
            [
                (destination, eid, status, at, pid, email, action, json.dumps(payload), reason)
                for eid, pid, email, action, payload, reason in rows
            ],
        )

    def events_in_flight(self, destination: str) -> list[tuple[str, int, str | None, str, Any]]:
        """Events marked before a push whose outcome was never recorded (a crash, a timeout)."""
        return [
            (r[0], r[1], r[2], r[3], json.loads(r[4]))
            for r in self.db.execute(
                "SELECT event_id, person_id, email, action, payload FROM sent_events "
                "WHERE destination = ? AND status = 'pending' ORDER BY at, event_id",
                (destination,),
            )
        ]

    def event_counts(self) -> dict[str, int]:
        return dict(
            self.db.execute(
                "SELECT destination || '.' || status, COUNT(*) FROM sent_events GROUP BY 1"
            )
        )
