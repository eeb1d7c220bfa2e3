"""Where the configured state lives, opened the one way every command needs: a StateLocation is
the SQLite file or the account's PostgreSQL schema (`state:` is a URL), so callers never branch
on the backend. `open_state` and `run_lock` take the config; what runs beside a run (alerts,
metrics, the OAuth token store) keeps a StateLocation."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kommo_sync.state.lock import FileLock
from kommo_sync.state.pg_lock import PgLock
from kommo_sync.state.postgres import PgLocation
from kommo_sync.state.sqlite import State

if TYPE_CHECKING:
    from kommo_sync.config import Config


@dataclass(frozen=True)
class StateLocation:
    """The SQLite file (`path`), or the PostgreSQL schema `pg` when it is set (`path` then only
    names the folder files beside the state go to)."""

    path: Path
    pg: PgLocation | None = None

    @classmethod
    def of(cls, path: Path, url: str | None, account: str) -> StateLocation:
        return cls(path, None if url is None else PgLocation.parse(url, account))

    @contextmanager
    def open(self, dry_run: bool = False) -> Iterator[State]:
        if self.pg is None:
            with State.open(self.path, dry_run=dry_run) as state:
                yield state
        else:
            with State.open_postgres(self.pg, dry_run=dry_run) as state:
                yield state

    def lock(self) -> FileLock | PgLock:
        """The lock two runs of the account never both hold (FileLock beside a file)."""
        return FileLock.beside(self.path) if self.pg is None else PgLock(self.pg)

    def where(self) -> str:
        """For messages: the file, or the schema and database (never a password)."""
        return str(self.path) if self.pg is None else self.pg.where()


def state_errors() -> tuple[type[Exception], ...]:
    """What a state's driver raises when the database fails under a query (the SQLite file, or
    PostgreSQL when psycopg is installed)."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def state_location(config: Config) -> StateLocation:
    return StateLocation.of(config.state, config.state_url, config.account)


def pg_location(config: Config) -> PgLocation | None:
    """The account's schema when `state:` is a PostgreSQL URL, None for a file."""
    return state_location(config).pg


@contextmanager
def open_state(config: Config, dry_run: bool = False) -> Iterator[State]:
    with state_location(config).open(dry_run) as state:
        yield state


def run_lock(config: Config) -> FileLock | PgLock:
    return state_location(config).lock()
