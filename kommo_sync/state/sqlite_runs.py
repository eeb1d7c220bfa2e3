"""The state's runs, the notes written back to Kommo, and what feedback taught us."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kommo_sync.state.sqlite_base import OwnedConnection


class RunTables(OwnedConnection):
    """Runs and their outcome, notes to Kommo, feedback seen and suppressed addresses."""

    # notes back to Kommo: planned → sending → written (or rejected) ---------------------------
    def plan_notes(self, notes: Iterable[Any], at: int, run_id: int | None) -> int:
        """Insert notes not planned before (by key); returns how many are new."""
        cursor = self.db.executemany(
            "INSERT INTO notes VALUES (?, ?, ?, ?, ?, 'planned', ?, ?, NULL) "
            "ON CONFLICT DO NOTHING",
            [(n.key, n.contact_id, n.entity, n.entity_id, n.text, at, run_id) for n in notes],
        )
        return cursor.rowcount

    def notes_with_status(self, status: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT key, contact_id, entity, entity_id, text FROM notes WHERE status = ? "
            "ORDER BY entity, key LIMIT ?",
            (status, limit),
        )
        return [
            dict(zip(("key", "contact_id", "entity", "entity_id", "text"), row, strict=True))
            for row in rows
        ]

    def mark_notes(
        self, keys: Iterable[str], status: str, at: int, reason: str | None = None
    ) -> None:
        self.db.executemany(
            "UPDATE notes SET status = ?, at = ?, reason = ? WHERE key = ?",
            [(status, at, reason, key) for key in keys],
        )

    def note_counts(self, run_id: int | None = None) -> dict[str, int]:
        if run_id is None:
            return dict(self.db.execute("SELECT status, COUNT(*) FROM notes GROUP BY status"))
        return dict(
            self.db.execute(
                "SELECT status, COUNT(*) FROM notes WHERE run_id = ? GROUP BY status", (run_id,)
            )
        )

    def remember_feedback(self, keys: Iterable[str]) -> None:
        self.db.executemany(
            "INSERT INTO feedback_seen VALUES (?) ON CONFLICT DO NOTHING", ((k,) for k in keys)
        )

    def seen_feedback(self, keys: Iterable[str]) -> set[str]:
        return {
            row[0]
            for row in self._select_in("SELECT key FROM feedback_seen WHERE key IN ({})", keys)
        }

    # suppressions learned from feedback (never re-subscribe) ---------------------------------
    def suppress(self, rows: Iterable[tuple[str, str, int]]) -> None:
        self.db.executemany("INSERT INTO suppressed VALUES (?, ?, ?) ON CONFLICT DO NOTHING", rows)

    def suppressed(self, emails: Iterable[str]) -> set[str]:
        return {
            row[0]
            for row in self._select_in("SELECT email FROM suppressed WHERE email IN ({})", emails)
        }

    # runs --------------------------------------------------------------------------------
    def start_run(self, mode: str, started_at: int) -> int:
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO runs (mode, started_at, status) VALUES (?, ?, 'running') RETURNING id",
                (mode, started_at),
            )
            run_id = int(cursor.fetchone()[0])
        return run_id

    def finish_run(
        self,
        run_id: int,
        status: str,
        finished_at: int,
        counts: dict[str, Any],
        exit_code: int,
        error: str | None,
    ) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, counts = ?, exit_code = ?, "
                "error = ? WHERE id = ?",
                (status, finished_at, json.dumps(counts, sort_keys=True), exit_code, error, run_id),
            )

    def last_finished_run(self, codes: Iterable[int]) -> dict[str, int] | None:
        """The exit code and end of the newest finished run that ended with one of `codes`."""
        wanted = sorted(set(codes))
        row = self.db.execute(
            "SELECT exit_code, finished_at FROM runs WHERE finished_at IS NOT NULL AND exit_code "
            f"IN ({', '.join('?' * len(wanted))}) ORDER BY id DESC LIMIT 1",
            wanted,
        ).fetchone()
        return None if row is None else {"exit_code": row[0], "finished_at": row[1]}

    def run_counts(self) -> dict[str, int]:
        """How many runs ended with each status (`running` ones too)."""
        return dict(self.db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status"))

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, mode, started_at, finished_at, status, exit_code, error, counts "
            "FROM runs ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": r[0],
                "mode": r[1],
                "started_at": r[2],
                "finished_at": r[3],
                "status": r[4],
                "exit_code": r[5],
                "error": r[6],
                "counts": json.loads(r[7]),
            }
            for r in rows
        ]
