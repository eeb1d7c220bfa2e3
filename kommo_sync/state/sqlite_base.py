"""The SQLite connection the state's tables share, owned by the thread that opened it.

Only the owning thread may touch the state: every use of the connection checks it and raises
StateThreadError naming both threads (SQLite's own guard, `check_same_thread`, stays on too).
Worker threads hand their results to the owning thread instead (see kommo_sync.pipeline).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from kommo_sync.batching import chunks


class StateThreadError(RuntimeError):
    """The state was touched from a thread that does not own it: a programming error."""


class OwnedConnection:
    """A connection, the dirty queue's sequence number, transactions and chunked `IN` queries."""

    def __init__(self, db: sqlite3.Connection, dry_run: bool):
        self._db, self.dry_run = db, dry_run
        self._seq = 0
        self._owner = threading.current_thread()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, to the owning thread only."""
        self.check_owner()
        return self._db

    def on_owner_thread(self) -> bool:
        return threading.current_thread() is self._owner

    def check_owner(self) -> None:
        """Raise StateThreadError unless the calling thread owns the state."""
        if not self.on_owner_thread():
            raise StateThreadError(
                f"the state is owned by thread {self._owner.name}; "
                f"{threading.current_thread().name} touched it"
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit; nested in a dry run's outer transaction it is never committed."""
        if self.db.in_transaction:
            self.db.execute("SAVEPOINT unit")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK TO unit")
                raise
            finally:
                self.db.execute("RELEASE unit")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    def _select_in(
        self, sql: str, values: Iterable[Any], prefix: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """Run an `IN ({})` query in chunks that stay under SQLite's variable limit."""
        rows: list[tuple[Any, ...]] = []
        for chunk in chunks(values, 900):
            rows += self.db.execute(
                sql.format(",".join("?" * len(chunk))), (*prefix, *chunk)
            ).fetchall()
        return rows

    def _execute_in(self, sql: str, values: Iterable[Any], prefix: tuple[Any, ...] = ()) -> None:
        self._select_in(sql, values, prefix)
