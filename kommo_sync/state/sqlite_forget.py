"""Forgetting a person in the state: every row about them erased physically, the
do-not-sync markers (HMACs of forgotten emails) and the audit trail, which hold no personal data.

Erasure is by the person's contact ids (any table with a `contact_id` or `person_id` column, the
mirror's `contacts`, and leads no other contact shares) and by the email itself: every row of
every table whose text holds one of the emails goes, so tables later work adds are covered too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from kommo_sync.state.sqlite_base import OwnedConnection

# the forget tables hold HMACs only; sqlite's own tables are never touched
KEPT_TABLES = frozenset({"forgotten", "forget_audit"})
ID_COLUMNS = ("contact_id", "person_id")


class ForgetTables(OwnedConnection):
    """Erasing a person, the forgotten markers and the forget audit."""

    def contacts_with_email(self, emails: Iterable[str]) -> dict[int, str]:
        """Mirrored contacts holding one of the emails (first or other address): id → data."""
        found: dict[int, str] = {}
        held = self.dialect.contains("lower(data)")
        for email in {e.lower() for e in emails}:
            rows = self.db.execute(
                f"SELECT id, data FROM contacts WHERE email = ? OR {held}",
                (email, email),
            )
            found.update(dict(rows))
        return found

    def erase_person(self, contact_ids: Iterable[int], emails: Iterable[str]) -> dict[str, int]:
        """Delete every row about the person (secure_delete on): table → rows deleted."""
        ids, texts = sorted(set(contact_ids)), sorted({e.lower() for e in emails if e})
        self.dialect.secure_delete(self.db)
        erased: dict[str, int] = {}
        with self.transaction():
            erased["leads"] = self._erase_own_leads(ids)
            for table in self._tables():
                erased[table] = erased.get(table, 0) + self._erase_in(table, ids, texts)
        return {table: count for table, count in erased.items() if count}

    def compact(self) -> None:
        """Rebuild the file so no erased byte stays in free pages, and empty the WAL."""
        self.dialect.compact(self.db)

    def _tables(self) -> list[str]:
        return [name for name in self.dialect.tables(self.db) if name not in KEPT_TABLES]

    def _erase_own_leads(self, ids: list[int]) -> int:
        """Leads linked to the person's contacts and to no other contact."""
        total = 0
        for lead_id in {row[0] for row in self._lead_ids(ids)}:
            others = self.db.execute(
                f"SELECT 1 FROM lead_contacts WHERE lead_id = ? AND contact_id NOT IN "
                f"({','.join('?' * len(ids))}) LIMIT 1",
                (lead_id, *ids),
            ).fetchone()
            if others is None:
                total += self.db.execute("DELETE FROM leads WHERE id = ?", (lead_id,)).rowcount
        return total

    def _lead_ids(self, ids: list[int]) -> list[tuple[Any, ...]]:
        return self._select_in("SELECT lead_id FROM lead_contacts WHERE contact_id IN ({})", ids)

    def _erase_in(self, table: str, ids: list[int], emails: list[str]) -> int:
        columns = self.dialect.columns(self.db, table)
        total = 0
        id_columns = [name for name, _ in columns if name in ID_COLUMNS]
        if table == "contacts":
            id_columns.append("id")
        for column in id_columns:
            total += self._delete_in(f"DELETE FROM {table} WHERE {column} IN ({{}})", ids)
        for column, kind in columns:
            if kind in ("", "TEXT", "BLOB") or "CHAR" in kind:
                for email in emails:
                    total += self.db.execute(
                        f"DELETE FROM {table} "
                        f"WHERE {self.dialect.contains(f'lower(CAST({column} AS TEXT))')}",
                        (email,),
                    ).rowcount
        return total

    def _delete_in(self, sql: str, values: Sequence[Any]) -> int:
        total = 0
        for start in range(0, len(values), 900):
            chunk = values[start : start + 900]
            total += self.db.execute(sql.format(",".join("?" * len(chunk))), chunk).rowcount
        return total

    # markers and audit ----------------------------------------------------------------------
    def mark_forgotten(self, hmacs: Iterable[str], at: int) -> None:
        self.db.executemany(
            "INSERT INTO forgotten VALUES (?, ?) ON CONFLICT DO NOTHING", ((h, at) for h in hmacs)
        )

    def unmark_forgotten(self, hmacs: Iterable[str]) -> int:
        return self._delete_in("DELETE FROM forgotten WHERE hmac IN ({})", list(hmacs))

    def forgotten(self, hmacs: Iterable[str]) -> set[str]:
        """Which of these HMACs are do-not-sync markers."""
        return {
            row[0]
            for row in self._select_in("SELECT hmac FROM forgotten WHERE hmac IN ({})", hmacs)
        }

    def forgotten_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM forgotten").fetchone()[0])

    def audit_forget(self, hmac: str, at: int, action: str, done: dict[str, Any]) -> None:
        """One audit row: no personal data, only the HMAC, the time and what was done where."""
        self.db.execute(
            "INSERT INTO forget_audit (hmac, at, action, done) VALUES (?, ?, ?, ?)",
            (hmac, at, action, json.dumps(done, sort_keys=True)),
        )

    def forget_audit(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT hmac, at, action, done FROM forget_audit ORDER BY id")
        return [
            {"hmac": h, "at": at, "action": action, "done": json.loads(done)}
            for h, at, action, done in rows
        ]
