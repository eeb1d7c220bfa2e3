"""Opening the state file: checked first (a directory, another program's database, a newer
schema are refused before anything chmods or writes it), then created 0600 (personal data)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from kommo_sync.config_reader import reason_of
from kommo_sync.errors import ConfigError
from kommo_sync.state.migrations import SCHEMA_VERSION


def connect(path: Path, dry_run: bool) -> sqlite3.Connection:
    check_state_file(path)
    if dry_run and not path.exists():
        return sqlite3.connect(":memory:", isolation_level=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)
    db = sqlite3.connect(path, isolation_level=None)
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
