"""The state: cursors, the Kommo mirror, pushed state, rejections, runs.

By default one SQLite file, WAL, mode 0600 (it holds personal data); or an account's schema in
PostgreSQL (kommo_sync.state.postgres). Either has a schema version with forward migrations and
a run lock (kommo_sync.state.location) so two runs never share it. Writes happen in explicit
transactions; a dry run opens the same state inside a transaction that is always rolled back,
so it changes nothing. The tables are grouped by concern in sqlite_mirror, sqlite_outcomes and
sqlite_runs; their SQL is the same on both backends (kommo_sync.state.dialect says the rest).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kommo_sync.state import postgres
from kommo_sync.state.dialect import Dialect, PostgresDialect, SqliteDialect
from kommo_sync.state.files import connect
from kommo_sync.state.migrations import MIGRATIONS
from kommo_sync.state.sqlite_forget import ForgetTables
from kommo_sync.state.sqlite_lifecycle import LifecycleTables
from kommo_sync.state.sqlite_mirror import MirrorTables
from kommo_sync.state.sqlite_outcomes import OutcomeTables
from kommo_sync.state.sqlite_rejections import RejectionTables
from kommo_sync.state.sqlite_runs import RunTables

Migrations = tuple[Callable[[Any], list[tuple[int, str]]], Callable[[Any, int], None]]


def _sqlite_pending(db: Any) -> list[tuple[int, str]]:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    return list(enumerate(MIGRATIONS[version:], start=version + 1))


def _sqlite_stamp(db: Any, number: int) -> None:
    db.execute(f"PRAGMA user_version = {number}")


SQLITE_MIGRATIONS: Migrations = (_sqlite_pending, _sqlite_stamp)
PG_MIGRATIONS: Migrations = (postgres.pending_migrations, postgres.set_schema_version)


class State(MirrorTables, OutcomeTables, RunTables, ForgetTables, RejectionTables, LifecycleTables):
    """The state. Use `State.open(path, dry_run=...)` (or `open_postgres`) as a context manager,
    on the thread that will use it: that thread owns it."""

    @classmethod
    @contextmanager
    def open(cls, path: Path, dry_run: bool = False) -> Iterator[State]:
        with cls._opened(connect(path, dry_run), dry_run, SqliteDialect(), SQLITE_MIGRATIONS) as s:
            yield s

    @classmethod
    @contextmanager
    def open_postgres(cls, location: postgres.PgLocation, dry_run: bool = False) -> Iterator[State]:
        db = postgres.PgConnection(postgres.connect_pg(location))
        try:
            if dry_run:
                db.execute("BEGIN")  # so even the schema's creation is rolled back
            postgres.prepare_schema(db, location)
        except BaseException:
            db.close()
            raise
        with cls._opened(db, dry_run, PostgresDialect(), PG_MIGRATIONS) as state:
            yield state

    @classmethod
    @contextmanager
    def _opened(
        cls, db: Any, dry_run: bool, dialect: Dialect, migrations: Migrations
    ) -> Iterator[State]:
        state = cls(db, dry_run, dialect)
        try:
            if dry_run and not db.in_transaction:
                db.execute("BEGIN")
            state._migrate(migrations)
            state._seq = state.db.execute("SELECT COALESCE(MAX(seq), 0) FROM dirty").fetchone()[0]
            yield state
        finally:
            if dry_run and db.in_transaction:
                db.rollback()
            db.close()

    def _migrate(self, migrations: Migrations) -> None:
        pending, stamp = migrations
        for number, script in pending(self.db):
            with self.transaction():
                for statement in filter(str.strip, script.split(";")):
                    self.db.execute(statement)
                stamp(self.db, number)
