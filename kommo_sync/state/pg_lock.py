"""The run lock of a state in PostgreSQL: a session advisory lock keyed by the account's schema,
held on its own connection for the whole run, and a holder row naming who has it (for `status`
and for the run that finds it held).

An advisory lock belongs to a server session, so it needs session pooling: behind PgBouncer in
transaction mode the lock would be lost (or kept) by whichever client got the session next.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from typing import Any

from kommo_sync.errors import LockedError
from kommo_sync.state.lock import LockHolder
from kommo_sync.state.postgres import PgConnection, PgLocation, connect_pg, prepare_schema, quoted

HOLDER_TABLE = "kommo_sync_lock"


def lock_key(schema: str) -> int:
    """A stable signed 64-bit key for the schema (advisory locks are database-wide)."""
    return int.from_bytes(hashlib.sha256(f"kommo-sync:{schema}".encode()).digest()[:8], signed=True)


class PgLock:
    """FileLock's counterpart for a state in PostgreSQL (the same acquire/release/holder)."""

    def __init__(self, location: PgLocation):
        self.location = location
        self.db: PgConnection | None = None

    def acquire(self, started_at: float | None = None) -> None:
        db = PgConnection(connect_pg(self.location))
        try:
            prepare_schema(db, self.location)
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {HOLDER_TABLE} "
                "(pid BIGINT NOT NULL, host TEXT NOT NULL, started_at BIGINT NOT NULL)"
            )
            if not _try_lock(db, self.location.schema):
                holder = _holder_row(db)
                raise LockedError(
                    f"another kommo-sync run holds the lock of {self.location.where()}"
                    f"{holder.describe()}; try again when it ends"
                )
            moment = time.time() if started_at is None else started_at
            _write_holder(db, (os.getpid(), socket.gethostname(), int(moment)))
        except BaseException:
            db.close()
            raise
        self.db = db

    def release(self) -> None:
        if self.db is not None:
            _write_holder(self.db, None)
            self.db.execute("SELECT pg_advisory_unlock(?)", (lock_key(self.location.schema),))
            self.db.close()
            self.db = None

    def holder(self) -> LockHolder | None:
        """Who holds the lock, or None when it is free; creates nothing (it probes the lock for
        an instant)."""
        db = PgConnection(connect_pg(self.location))
        try:
            if _try_lock(db, self.location.schema):
                db.execute("SELECT pg_advisory_unlock(?)", (lock_key(self.location.schema),))
                return None
            db.execute(f"SET search_path TO {quoted(self.location.schema)}")
            return _holder_row(db)
        finally:
            db.close()


def _try_lock(db: PgConnection, schema: str) -> bool:
    row: Any = db.execute("SELECT pg_try_advisory_lock(?)", (lock_key(schema),)).fetchone()
    return bool(row[0])


def _write_holder(db: PgConnection, row: tuple[int, str, int] | None) -> None:
    db.execute("BEGIN")
    db.execute(f"DELETE FROM {HOLDER_TABLE}")
    if row is not None:
        db.execute(f"INSERT INTO {HOLDER_TABLE} VALUES (?, ?, ?)", row)
    db.commit()


def _holder_row(db: PgConnection) -> LockHolder:
    made: Any = db.execute(f"SELECT to_regclass('{HOLDER_TABLE}')").fetchone()
    if made[0] is None:
        return LockHolder()  # taken this instant, its table not yet made
    row: Any = db.execute(f"SELECT pid, host, started_at FROM {HOLDER_TABLE}").fetchone()
    return LockHolder(*row) if row else LockHolder()
