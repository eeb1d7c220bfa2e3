"""The SQLite state file: cursors, the Kommo mirror, pushed state, rejections, runs.

One file, WAL, mode 0600 (it holds personal data), a schema version with forward migrations,
and a lock file so two runs never share it. Writes happen in explicit transactions; a dry run
opens the same file inside a transaction that is always rolled back, so it changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Any

from kommo_sync.batching import chunks
from kommo_sync.clock import iso_utc
from kommo_sync.config_reader import reason_of
from kommo_sync.encoding import compact_json
from kommo_sync.errors import ConfigError, LockedError
from kommo_sync.model import Contact, Lead

MIGRATIONS: list[str] = [
    """
    CREATE TABLE cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE contacts (id INTEGER PRIMARY KEY, updated_at INTEGER NOT NULL, email TEXT,
                           company_id INTEGER, data TEXT NOT NULL);
    CREATE INDEX contacts_by_email ON contacts(email);
    CREATE INDEX contacts_by_company ON contacts(company_id);
    CREATE TABLE leads (id INTEGER PRIMARY KEY, updated_at INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE TABLE lead_contacts (contact_id INTEGER NOT NULL, lead_id INTEGER NOT NULL,
                                PRIMARY KEY (contact_id, lead_id)) WITHOUT ROWID;
    CREATE INDEX lead_contacts_by_lead ON lead_contacts(lead_id);
    CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE dirty (contact_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE pushed (destination TEXT NOT NULL, person_id INTEGER NOT NULL,
                         fingerprint TEXT NOT NULL, data TEXT NOT NULL,
                         PRIMARY KEY (destination, person_id)) WITHOUT ROWID;
    CREATE TABLE rejections (destination TEXT NOT NULL, person_id INTEGER NOT NULL,
                             kind TEXT NOT NULL, reason TEXT NOT NULL, fingerprint TEXT NOT NULL,
                             email TEXT, run_id INTEGER, at INTEGER NOT NULL,
                             PRIMARY KEY (destination, person_id)) WITHOUT ROWID;
    CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, mode TEXT NOT NULL,
                       started_at INTEGER NOT NULL, finished_at INTEGER, status TEXT NOT NULL,
                       counts TEXT NOT NULL DEFAULT '{}');
    CREATE TABLE destination_meta (destination TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                                   PRIMARY KEY (destination, key)) WITHOUT ROWID;
    CREATE TABLE sent_events (destination TEXT NOT NULL, event_id TEXT NOT NULL, status TEXT NOT NULL,
                              at INTEGER NOT NULL, person_id INTEGER, email TEXT, action TEXT,
                              payload TEXT, reason TEXT,
                              PRIMARY KEY (destination, event_id)) WITHOUT ROWID;
    CREATE INDEX sent_events_by_status ON sent_events(destination, status);
    CREATE TABLE suppressed (email TEXT NOT NULL, source TEXT NOT NULL, at INTEGER NOT NULL,
                             PRIMARY KEY (email, source)) WITHOUT ROWID;
    CREATE TABLE notes (key TEXT PRIMARY KEY, contact_id INTEGER NOT NULL, entity TEXT NOT NULL,
                        entity_id INTEGER NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL,
                        at INTEGER NOT NULL, run_id INTEGER, reason TEXT);
    CREATE INDEX notes_by_status ON notes(status);
    CREATE TABLE feedback_seen (key TEXT PRIMARY KEY) WITHOUT ROWID;
    """,
    # no query reads contacts by company, and its random-order pages made every mirror write dear
    """
    DROP INDEX IF EXISTS contacts_by_company;
    """,
    # unsubscribes we push ourselves, noted before the push: read back after a crash they are not news;
    # Kommo consent boxes still to uncheck, so a crash never loses the write-back
    """
    CREATE TABLE own_optouts (destination TEXT NOT NULL, email TEXT NOT NULL, at INTEGER NOT NULL,
                              PRIMARY KEY (destination, email)) WITHOUT ROWID;
    CREATE TABLE consent_to_clear (contact_id INTEGER PRIMARY KEY);
    """,
    # each run's exit code and error text, for `status` and monitoring
    """
    ALTER TABLE runs ADD COLUMN exit_code INTEGER;
    ALTER TABLE runs ADD COLUMN error TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


CONTACT_FIELDS = tuple(f.name for f in fields(Contact))
LEAD_FIELDS = tuple(f.name for f in fields(Lead))
_contact_values = attrgetter(*CONTACT_FIELDS)
_lead_values = attrgetter(*LEAD_FIELDS)
encode_record = compact_json()  # a record's field values, in declaration order: the mirror's format
_encode_sorted = compact_json(sort_keys=True)
_scan_json = json.JSONDecoder().scan_once


def decode_record(data: str) -> list[Any]:
    """A mirror row back to its field list, read by the JSON scanner itself (we wrote the row)."""
    try:
        return _scan_json(data, 0)[0]
    except StopIteration as err:
        raise json.JSONDecodeError("Expecting value", data, err.value) from None


def contact_to_row(contact: Contact) -> tuple[int, int, str | None, int | None, str]:
    return (
        contact.id,
        contact.updated_at,
        contact.email,
        contact.company_id,
        encode_record(_contact_values(contact)),
    )


def contact_from_json(data: str) -> Contact:
    values = decode_record(data)
    values[4] = tuple(values[4])  # emails
    return Contact(*values)


def lead_to_row(lead: Lead) -> tuple[int, int, str]:
    return lead.id, lead.updated_at, encode_record(_lead_values(lead))


def lead_from_json(data: str) -> Lead:
    values = decode_record(data)
    values[7] = tuple(values[7])  # contact_ids
    return Lead(*values)


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, as its file says (None fields when the file says nothing readable)."""

    pid: int | None = None
    host: str | None = None
    started_at: int | None = None

    def describe(self) -> str:
        """` (pid 12 on web-1, since 2026-01-01T00:00:00+00:00)`, or nothing when unknown."""
        if self.pid is None or self.started_at is None:
            return ""
        return f" (pid {self.pid} on {self.host}, since {iso_utc(self.started_at)})"


class FileLock:
    """An exclusive, non-blocking lock beside the state file (cron overlap protection). Its file
    (mode 0600) names the holder, for a run that finds it held and for `status`; it is emptied
    on release."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: Any = None

    @classmethod
    def beside(cls, state: Path) -> FileLock:
        return cls(state.with_name(state.name + ".lock"))

    def acquire(self, started_at: float | None = None) -> None:
        """Take the lock (LockedError naming the holder when another run has it) and sign it."""
        self.handle = self._open()
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_in(self.handle)
            self.handle.close()
            self.handle = None
            raise LockedError(
                f"another kommo-sync run holds {self.path}{holder.describe()}; "
                "try again when it ends"
            ) from None
        moment = time.time() if started_at is None else started_at
        self._write(
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started_at": int(moment)}
            )
        )

    def release(self) -> None:
        if self.handle:
            self._write("")
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def holder(self) -> LockHolder | None:
        """Who holds the lock, or None when it is free. Creates and writes nothing: a shared
        lock probes it for an instant."""
        try:
            handle = open(self.path, encoding="utf-8")
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _holder_in(handle)
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None

    def _open(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.fdopen(
                os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8"
            )
            os.fchmod(handle.fileno(), 0o600)  # a lock file left by an earlier release may be 0644
            return handle
        except OSError as exc:  # the state's folder is a file, or not ours to write
            raise ConfigError("state", f"cannot create {self.path}: {exc.strerror}") from None

    def _write(self, text: str) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(text)
        self.handle.flush()


def _holder_in(handle: Any) -> LockHolder:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
        return LockHolder(int(data["pid"]), str(data["host"]), int(data["started_at"]))
    except (ValueError, KeyError, TypeError):  # empty, or written half-way this instant
        return LockHolder()


class State:
    """The state file. Use `State.open(path, dry_run=...)` as a context manager."""

    def __init__(self, db: sqlite3.Connection, dry_run: bool):
        self.db, self.dry_run = db, dry_run
        self._seq = 0

    @classmethod
    @contextmanager
    def open(cls, path: Path, dry_run: bool = False) -> Iterator[State]:
        db = _connect(path, dry_run)
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

    # cursors -----------------------------------------------------------------------------
    def cursor(self, name: str) -> int | None:
        row = self.db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, name: str, value: int) -> None:
        self.db.execute(
            "INSERT INTO cursors VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def cursors(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, value FROM cursors ORDER BY name"))

    # mirror ------------------------------------------------------------------------------
    def upsert_contacts(self, rows: Iterable[tuple[int, int, str | None, int | None, str]]) -> None:
        """Write contacts given as `contact_to_row` rows (encoded once, by the caller's diff)."""
        self.db.executemany(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "updated_at = excluded.updated_at, email = excluded.email, company_id = excluded.company_id, "
            "data = excluded.data",
            rows,
        )

    def known_leads(self, ids: Iterable[int]) -> dict[int, Lead]:
        return {lead_id: lead_from_json(data) for lead_id, data in self.lead_rows(ids).items()}

    def lead_rows(self, ids: Iterable[int]) -> dict[int, str]:
        """The mirror's encoded leads, to diff against a page without decoding them."""
        return dict(self._select_in("SELECT id, data FROM leads WHERE id IN ({})", ids))

    def contact_rows(self, ids: Iterable[int]) -> dict[int, str]:
        return dict(self._select_in("SELECT id, data FROM contacts WHERE id IN ({})", ids))

    def upsert_leads(self, leads: list[Lead], rows: Iterable[tuple[int, int, str]]) -> None:
        """Write leads given with their `lead_to_row` rows (encoded once, by the caller's diff)."""
        self.db.executemany(
            "INSERT INTO leads VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "updated_at = excluded.updated_at, data = excluded.data",
            rows,
        )
        ids = [lead.id for lead in leads]
        self._execute_in("DELETE FROM lead_contacts WHERE lead_id IN ({})", ids)
        self.db.executemany(
            "INSERT OR IGNORE INTO lead_contacts VALUES (?, ?)",
            [(cid, lead.id) for lead in leads for cid in lead.contact_ids],
        )

    def contacts(self, ids: Iterable[int]) -> dict[int, Contact]:
        return {
            row[0]: contact_from_json(row[1])
            for row in self._select_in("SELECT id, data FROM contacts WHERE id IN ({})", ids)
        }

    def contact_ids_by_email(self, emails: Iterable[str]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for email, cid in self._select_in(
            "SELECT email, id FROM contacts WHERE email IN ({}) ORDER BY id", emails
        ):
            found.setdefault(email, []).append(cid)
        return found

    def leads_of(self, contact_ids: Iterable[int]) -> dict[int, list[Lead]]:
        by_contact: dict[int, list[Lead]] = {}
        for cid, data in self._select_in(
            "SELECT lc.contact_id, l.data FROM lead_contacts lc JOIN leads l ON l.id = lc.lead_id "
            "WHERE lc.contact_id IN ({})",
            contact_ids,
        ):
            by_contact.setdefault(cid, []).append(lead_from_json(data))
        return by_contact

    def company_names(self, ids: Iterable[int]) -> dict[int, str]:
        return dict(self._select_in("SELECT id, name FROM companies WHERE id IN ({})", ids))

    def save_companies(self, names: dict[int, str]) -> None:
        self.db.executemany(
            "INSERT INTO companies VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET name = excluded.name",
            names.items(),
        )

    # the queue of contacts whose outcome is not yet recorded ----------------------------------
    def mark_dirty(self, contact_ids: Iterable[int]) -> None:
        """Queue contacts; each mark gets a new sequence number, so a contact marked again while
        its batch is being pushed stays queued when that batch is cleared."""
        self._seq += 1
        self.db.executemany(
            "INSERT INTO dirty VALUES (?, ?) ON CONFLICT(contact_id) DO UPDATE SET seq = excluded.seq",
            ((cid, self._seq) for cid in contact_ids),
        )

    def dirty_seq(self) -> int:
        return self._seq

    def ready_batches(self, size: int, after: int = -1) -> Iterator[list[int]]:
        """Queued contacts already in the mirror, by id, in batches; re-read between batches."""
        last = after
        while True:
            batch = [
                row[0]
                for row in self.db.execute(
                    "SELECT d.contact_id FROM dirty d JOIN contacts c ON c.id = d.contact_id "
                    "WHERE d.contact_id > ? ORDER BY d.contact_id LIMIT ?",
                    (last, size),
                )
            ]
            if not batch:
                return
            yield batch
            last = batch[-1]

    def mark_all_dirty(self) -> int:
        return self.db.execute(
            "INSERT OR IGNORE INTO dirty SELECT id, ? FROM contacts", (self._seq,)
        ).rowcount

    def forget_pushed(self, destination: str) -> None:
        """Everything known about a destination's old target (records, rejections, tag ids…)."""
        for table in ("pushed", "rejections", "destination_meta"):
            self.db.execute(f"DELETE FROM {table} WHERE destination = ?", (destination,))

    def dirty_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM dirty").fetchone()[0]

    def dirty_missing_from_mirror(self) -> list[int]:
        return [
            row[0]
            for row in self.db.execute(
                "SELECT d.contact_id FROM dirty d LEFT JOIN contacts c ON c.id = d.contact_id WHERE c.id IS NULL"
            )
        ]

    def clear_dirty(self, contact_ids: Iterable[int], up_to_seq: int) -> None:
        self._execute_in(
            "DELETE FROM dirty WHERE seq <= ? AND contact_id IN ({})",
            contact_ids,
            prefix=(up_to_seq,),
        )

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

    def record_pushed(
        self, destination: str, rows: Iterable[tuple[int, str, dict[str, Any]]]
    ) -> None:
        self.db.executemany(
            "INSERT INTO pushed VALUES (?, ?, ?, ?) ON CONFLICT(destination, person_id) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, data = excluded.data",
            [(destination, pid, fp, _encode_sorted(data)) for pid, fp, data in rows],
        )

    def set_pushed_status(self, destination: str, person_ids: Iterable[int], status: str) -> None:
        """Record a status the destination reported (e.g. unsubscribed) on what we pushed."""
        self.db.executemany(
            "UPDATE pushed SET data = json_set(data, '$.status', ?) "
            "WHERE destination = ? AND person_id = ?",
            [(status, destination, pid) for pid in person_ids],
        )

    def rejections(self, destination: str, person_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(kind, fingerprint) of the recorded rejections among `person_ids`."""
        return {
            row[0]: (row[1], row[2])
            for row in self._select_in(
                "SELECT person_id, kind, fingerprint FROM rejections WHERE destination = ? AND person_id IN ({})",
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
        """Store a rejection; a transient one that repeats keeps the time it was first seen."""
        self.db.execute(
            "INSERT INTO rejections VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(destination, person_id) DO UPDATE "
            "SET kind = excluded.kind, reason = excluded.reason, fingerprint = excluded.fingerprint, "
            "email = excluded.email, run_id = excluded.run_id, "
            "at = CASE WHEN rejections.kind = excluded.kind THEN rejections.at ELSE excluded.at END",
            (destination, person_id, kind, reason, fingerprint, email, run_id, at),
        )

    def clear_rejections(self, destination: str, person_ids: Iterable[int]) -> None:
        self._execute_in(
            "DELETE FROM rejections WHERE destination = ? AND person_id IN ({})",
            person_ids,
            prefix=(destination,),
        )

    def requeue_transient_rejections(self) -> int:
        """Transient rejections are retried by the next run: put their contacts back in the queue."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO dirty SELECT person_id, ? FROM rejections "
            "WHERE kind = 'transient'",
            (self._seq,),
        )
        return cursor.rowcount

    def pending_rejections(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT destination, person_id, kind, reason, email, at FROM rejections "
            "ORDER BY at DESC LIMIT ?",
            (limit,),
        )
        keys = ("destination", "contact_id", "kind", "reason", "email", "at")
        return [dict(zip(keys, row)) for row in rows]

    def rejection_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT kind, COUNT(*) FROM rejections GROUP BY kind"))

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
            "INSERT OR IGNORE INTO consent_to_clear VALUES (?)", [(cid,) for cid in contact_ids]
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
            "INSERT OR REPLACE INTO own_optouts VALUES (?, ?, ?)",
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

    def requeue_leads_of_pipelines(self, pipeline_ids: Iterable[int]) -> int:
        """Queue the contacts of every mirrored lead in these pipelines (their catalog changed)."""
        position = LEAD_FIELDS.index("pipeline_id")
        ids = list(pipeline_ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        return self.db.execute(
            f"INSERT OR IGNORE INTO dirty SELECT DISTINCT lc.contact_id, ? FROM lead_contacts lc "
            f"JOIN leads l ON l.id = lc.lead_id WHERE json_extract(l.data, '$[{position}]') IN ({marks})",
            (self._seq, *ids),
        ).rowcount

    # per-destination memory (managed tags, created merge fields, remote ids) ----------------
    def meta(self, destination: str, key: str, default: Any = None) -> Any:
        row = self.db.execute(
            "SELECT value FROM destination_meta WHERE destination = ? AND key = ?",
            (destination, key),
        ).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, destination: str, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO destination_meta VALUES (?, ?, ?)",
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
        rows: Iterable[tuple[str, int, str | None, str, Any, str]],
    ) -> None:
        """Upsert (event_id, person_id, email, action, payload, reason) rows with one status."""
        self.db.executemany(
            "INSERT INTO sent_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(destination, event_id) "
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

    # notes back to Kommo: planned → sending → written (or rejected) ---------------------------
    def plan_notes(self, notes: Iterable[Any], at: int, run_id: int | None) -> int:
        """Insert notes not planned before (by key); returns how many are new."""
        cursor = self.db.executemany(
            "INSERT OR IGNORE INTO notes VALUES (?, ?, ?, ?, ?, 'planned', ?, ?, NULL)",
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
            dict(zip(("key", "contact_id", "entity", "entity_id", "text"), row)) for row in rows
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
        self.db.executemany("INSERT OR IGNORE INTO feedback_seen VALUES (?)", ((k,) for k in keys))

    def seen_feedback(self, keys: Iterable[str]) -> set[str]:
        return {
            row[0]
            for row in self._select_in("SELECT key FROM feedback_seen WHERE key IN ({})", keys)
        }

    # suppressions learned from feedback (never re-subscribe) ---------------------------------
    def suppress(self, rows: Iterable[tuple[str, str, int]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO suppressed VALUES (?, ?, ?)", rows)

    def suppressed(self, emails: Iterable[str]) -> set[str]:
        return {
            row[0]
            for row in self._select_in("SELECT email FROM suppressed WHERE email IN ({})", emails)
        }

    # runs --------------------------------------------------------------------------------
    def start_run(self, mode: str, started_at: int) -> int:
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO runs (mode, started_at, status) VALUES (?, ?, 'running')",
                (mode, started_at),
            )
        return int(cursor.lastrowid or 0)

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

    # helpers -----------------------------------------------------------------------------
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


def _connect(path: Path, dry_run: bool) -> sqlite3.Connection:
    check_state_file(path)
    if dry_run and not path.exists():
        return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if not dry_run:
        db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


SQLITE_HEADER = b"SQLite format 3\x00"
OUR_TABLES = frozenset({"cursors", "runs"})


def check_state_file(path: Path) -> None:
    """Refuse a `state:` path that is not a kommo-sync state this release can use (a directory,
    another program's file, a newer schema) before anything chmods or writes it."""
    if path.is_dir():
        raise ConfigError("state", f"{path} is a directory; give a file path like ./kommo-sync.db")
    if not path.exists() or path.stat().st_size == 0:
        return  # a new state (or one created and never written)
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        tables, version = _schema_of(path) if header == SQLITE_HEADER else (set(), -1)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError("state", f"cannot read {path}: {reason_of(exc)}") from None
    if version < 0:
        raise ConfigError("state", f"{path} is not a SQLite database")
    if (tables or version) and not tables >= OUR_TABLES:
        raise ConfigError(
            "state", f"{path} is a SQLite database of another program (it has no kommo-sync tables)"
        )
    if version > SCHEMA_VERSION:
        raise ConfigError(
            "state",
            f"{path} was written by a newer kommo-sync (schema {version}; "
            f"this release knows {SCHEMA_VERSION}): upgrade kommo-sync",
        )


def _schema_of(path: Path) -> tuple[set[str], int]:
    """Table names and schema version, read as an immutable file: no lock, journal or -wal is
    created beside a file that may not be ours."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        return tables, db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()
