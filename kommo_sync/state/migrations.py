"""The state's schema: forward migrations, one script per version (PRAGMA user_version).

A script is never edited once released: a state written by an earlier release is brought
forward by running the scripts it has not seen, and the stored format never drifts by accident.
"""

from __future__ import annotations

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
    """,  # noqa: E501 - stored verbatim in sqlite_master: rewrapped, the schema would change
    # no query reads contacts by company, and its random-order pages made every mirror write dear
    """
    DROP INDEX IF EXISTS contacts_by_company;
    """,
    # unsubscribes we push ourselves, noted before the push: read back after a crash they are
    # not news; Kommo consent boxes still to uncheck, so a crash never loses the write-back
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
    # `rejections --clear` (acknowledged: held until the data changes) and `retry` (re-queued:
    # planned again by the next run though the data is unchanged)
    """
    ALTER TABLE rejections ADD COLUMN acknowledged_at INTEGER;
    ALTER TABLE rejections ADD COLUMN retry INTEGER NOT NULL DEFAULT 0;
    """,
    # `forget`: do-not-sync markers and the audit, both keyed by an HMAC of the email (no
    # personal data)
    """
    CREATE TABLE forgotten (hmac TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE forget_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, hmac TEXT NOT NULL,
                               at INTEGER NOT NULL, action TEXT NOT NULL, done TEXT NOT NULL);
    """,
    # contacts deleted in Kommo whose exit (`on_delete`) some destination still has to make;
    # ids only (the pushed records say what each destination holds)
    """
    CREATE TABLE exits_to_make (contact_id INTEGER PRIMARY KEY);
    """,
    # companies mirrored whole (their fields and tags, for the field map), read by their own
    # updated_at window; a row from before keeps its name and no data
    """
    ALTER TABLE companies ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE companies ADD COLUMN data TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
