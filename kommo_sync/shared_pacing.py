"""Kommo's pace shared by every process that draws on the same limit.

Kommo counts the requests of one egress IP (or account, or integration: unconfirmed) together,
so two runs pacing themselves apart meet 429s. The slot schedule of `pacing.py` is kept outside
the process instead: one row per pacing key, in a small SQLite file on one host (every take,
claim and hold one `BEGIN IMMEDIATE` transaction, so processes take turns) or in a Postgres
table across hosts (the row locked `FOR UPDATE`, the moments on the database's clock so hosts
agree). A row holds moments in the store's wall time; each answer is converted to the caller's
monotonic scale by the distance from the store's "now". Pacing never fails a run: a store that
cannot be opened or answers with an error gives way to the process's own schedule, with one
warning naming it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from kommo_sync.clock import Clock
from kommo_sync.errors import SyncError
from kommo_sync.pacing import LocalSchedule, Slots, SlotSchedule, book, held, start_or_wait

log = logging.getLogger("kommo_sync.pacing")
T = TypeVar("T")
Step = Callable[[Slots, float], tuple[Slots, T]]
LOCK_TIMEOUT = 10.0  # seconds a store may keep us waiting for its lock before we pace alone
TABLE = "kommo_pacing"
# in Postgres, one schema beside the accounts' own (kommo_sync_<account>), shared by all of them
PG_TABLE = f"kommo_sync_shared.{TABLE}"


class SlotStore(Protocol):
    """Rows of `Slots` by pacing key; `update` runs a step on one row under the store's lock."""

    where: str  # the store, for the fallback warning

    def update(self, key: str, step: Step[T]) -> tuple[T, float]:
        """Apply `step(slots, now)` to the key's row; its result and the store's `now`."""
        ...


class SharedSchedule:
    """A SlotSchedule over a SlotStore, falling back to a LocalSchedule when the store fails."""

    def __init__(self, store: SlotStore, key: str, clock: Clock):
        self.store, self.key, self.clock = store, key, clock
        self.fallback: LocalSchedule | None = None
        self._lock = threading.Lock()

    def take(self, interval: float) -> float:
        start = self._run(lambda s, now: book(s, now, interval), lambda f: f.take(interval))
        assert start is not None
        return start

    def claim(self, interval: float) -> float | None:
        return self._run(
            lambda s, now: start_or_wait(s, now, interval), lambda f: f.claim(interval)
        )

    def hold(self, seconds: float) -> None:
        self._run(lambda s, now: (held(s, now, seconds), None), lambda f: f.hold(seconds))

    def _run(
        self, step: Step[float | None], local: Callable[[LocalSchedule], float | None]
    ) -> float | None:
        """The step in the store, its moment moved to our monotonic scale; else done locally."""
        if self.fallback is None:
            try:
                moment, now = self.store.update(self.key, step)
                return None if moment is None else self.clock.monotonic() + (moment - now)
            except SyncError:  # ours (a stop asked for) goes through
                raise
            except Exception as exc:  # noqa: BLE001 -- any store failure: pace alone, go on
                self._give_up(exc)
        assert self.fallback is not None
        return local(self.fallback)

    def _give_up(self, exc: Exception) -> None:
        with self._lock:
            if self.fallback is None:
                log.warning(
                    "shared Kommo pacing in %s unusable (%s): this run paces alone",
                    self.store.where,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
                self.fallback = LocalSchedule(self.clock)


def default_file() -> Path:
    """Per user and host: `$XDG_RUNTIME_DIR/kommo-sync/pacing.db`, else the user's cache."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".cache"
    return base / "kommo-sync" / "pacing.db"


class FileStore:
    """Slot rows in a SQLite file (mode 0600, made on first use); moments in wall time."""

    def __init__(self, path: Path, clock: Clock):
        self.path, self.clock, self.where = path, clock, str(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used by one thread at a time

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            db = sqlite3.connect(
                self.path, timeout=LOCK_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            # Slots are worth a second: a crash that loses the last one costs nothing, so no
            # fsync per booking (each would hold every other process's turn).
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (key TEXT PRIMARY KEY, next REAL NOT NULL,"
                " last_start REAL NOT NULL, held_until REAL NOT NULL)"
            )
            self._db = db
        return self._db

    def update(self, key: str, step: Step[T]) -> tuple[T, float]:
        with self._lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self.clock.now()
                row = db.execute(
                    f"SELECT next, last_start, held_until FROM {TABLE} WHERE key = ?", (key,)
                ).fetchone()
                slots, result = step(Slots(*row) if row else Slots(), now)
                db.execute(
                    f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, ?, ?)",
                    (key, slots.next, _finite(slots.last_start), _finite(slots.held_until)),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return result, now


class PostgresStore:
    """Slot rows in a Postgres table, on the database's clock (`clock_timestamp()`), so hosts
    whose clocks differ still agree; its own connection, one transaction per step."""

    def __init__(self, url: str):
        self.url, self.where = url, _without_password(url)
        self._db: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        if self._db is None:
            import psycopg  # an optional dependency: only a Postgres state needs it

            db = psycopg.connect(self.url, autocommit=True, connect_timeout=int(LOCK_TIMEOUT))
            db.execute(f"SET lock_timeout = '{int(LOCK_TIMEOUT)}s'")
            with db.transaction():  # CREATE ... IF NOT EXISTS races itself: one at a time
                db.execute(f"SELECT pg_advisory_xact_lock(hashtext('{PG_TABLE}'))")
                db.execute("CREATE SCHEMA IF NOT EXISTS kommo_sync_shared")
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {PG_TABLE} (key TEXT PRIMARY KEY,"
                    " next DOUBLE PRECISION NOT NULL, last_start DOUBLE PRECISION NOT NULL,"
                    " held_until DOUBLE PRECISION NOT NULL)"
                )
            self._db = db
        return self._db

    def update(self, key: str, step: Step[T]) -> tuple[T, float]:
        with self._lock:
            db = self._connect()
            with db.transaction():
                db.execute(
                    f"INSERT INTO {PG_TABLE} VALUES (%s, 0, %s, %s) ON CONFLICT (key) DO NOTHING",
                    (key, _finite(Slots().last_start), _finite(Slots().held_until)),
                )
                row = db.execute(
                    "SELECT next, last_start, held_until, extract(epoch FROM clock_timestamp())"
                    f" FROM {PG_TABLE} WHERE key = %s FOR UPDATE",
                    (key,),
                ).fetchone()
                now = float(row[3])
                slots, result = step(Slots(*row[:3]), now)
                db.execute(
                    f"UPDATE {PG_TABLE} SET next = %s, last_start = %s, held_until = %s"
                    " WHERE key = %s",
                    (slots.next, _finite(slots.last_start), _finite(slots.held_until), key),
                )
            return result, now


def _finite(moment: float) -> float:
    """-inf ("never") as a very early moment: both stores keep plain finite numbers."""
    return max(moment, -1e18)


def _without_password(url: str) -> str:
    """The URL for a warning: `postgresql://user@host/db`, the password left out."""
    scheme, sep, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}{at}{place}" if at else url


def schedule_for(
    key: str, *, postgres_url: str | None, file: Path | None, clock: Clock
) -> SlotSchedule:
    """The Kommo slot schedule for `key`: on simulated time the process's own (a FakeClock's
    moments mean nothing to another process, and tests stay deterministic); with a Postgres
    URL (a Postgres state) a row there; else a row in the pacing file (`file` or the default)."""
    if clock.simulated:
        return LocalSchedule(clock)
    if postgres_url:
        return SharedSchedule(PostgresStore(postgres_url), key, clock)
    return SharedSchedule(FileStore(file or default_file(), clock), key, clock)
