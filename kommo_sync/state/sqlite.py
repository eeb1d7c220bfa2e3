"""The SQLite state file: cursors, the Kommo mirror, pushed state, rejections, runs.

One file, WAL, mode 0600 (it holds personal data), a schema version with forward migrations,
and a lock file so two runs never share it. Writes happen in explicit transactions; a dry run
opens the same file inside a transaction that is always rolled back, so it changes nothing.
The tables are grouped by concern in sqlite_mirror, sqlite_outcomes and sqlite_runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kommo_sync.state.files import connect
from kommo_sync.state.migrations import MIGRATIONS
from kommo_sync.state.sqlite_forget import ForgetTables
from kommo_sync.state.sqlite_lifecycle import LifecycleTables
from kommo_sync.state.sqlite_mirror import MirrorTables
from kommo_sync.state.sqlite_outcomes import OutcomeTables
from kommo_sync.state.sqlite_rejections import RejectionTables
from kommo_sync.state.sqlite_runs import RunTables


class State(MirrorTables, OutcomeTables, RunTables, ForgetTables, RejectionTables, LifecycleTables):
    """The state file. Use `State.open(path, dry_run=...)` as a context manager, on the thread
    that will use it: that thread owns it."""

    @classmethod
    @contextmanager
    def open(cls, path: Path, dry_run: bool = False) -> Iterator[State]:
        db = connect(path, dry_run)
        state = cls(db, dry_run)
        try:
            if dry_run:
                db.execute("BEGIN")
            state._migrate()
            state._seq = state.db.execute("SELECT COALESCE(MAX(seq), 0) FROM dirty").fetchone()[0]
            yield state
        finally:
            if dry_run and db.in_transaction:
                db.rollback()
            db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
