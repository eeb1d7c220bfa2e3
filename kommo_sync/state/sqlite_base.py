"""The connection the state's tables share, owned by the thread that opened it: SQLite's own,
or a PostgreSQL one behind the same few methods (kommo_sync.state.postgres).

Only the owning thread may touch the state: every use of the connection checks it and raises
StateThreadError naming both threads (SQLite's own guard, `check_same_thread`, stays on too).
Worker threads hand their results to the owning thread instead (see kommo_sync.pipeline).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from kommo_sync.batching import chunks
from kommo_sync.state.dialect import Dialect, SqliteDialect


class StateThreadError(RuntimeError):
    """The state was touched from a thread that does not own it: a programming error."""


class OwnedConnection:
    """A connection, the dirty queue's sequence number, transactions and chunked `IN` queries."""

    def __init__(self, db: Any, dry_run: bool, dialect: Dialect | None = None):
        self._db, self.dry_run = db, dry_run
        self.dialect: Dialect = dialect or SqliteDialect()
        self._seq = 0
        self._owner = threading.current_thread()

    @property
    def db(self) -> Any:
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
        self.db.execute(self.dialect.begin)
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
        for cursor in self._chunked(sql, values, prefix):
            rows += cursor.fetchall()
        return rows

    def _execute_in(self, sql: str, values: Iterable[Any], prefix: tuple[Any, ...] = ()) -> None:
        for _ in self._chunked(sql, values, prefix):
            pass

    def _chunked(self, sql: str, values: Iterable[Any], prefix: tuple[Any, ...]) -> Iterator[Any]:
        for chunk in chunks(values, 900):
            yield self.db.execute(sql.format(",".join("?" * len(chunk))), (*prefix, *chunk))
