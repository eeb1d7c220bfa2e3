"""Where the configured state lives, opened the one way every command needs: `open_state` and
`run_lock` choose the SQLite file or the PostgreSQL schema (`state:` is a URL), so callers never
branch on the backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from kommo_sync.state.lock import FileLock
from kommo_sync.state.pg_lock import PgLock
from kommo_sync.state.postgres import PgLocation
from kommo_sync.state.sqlite import State

if TYPE_CHECKING:
    from kommo_sync.config import Config


def pg_location(config: Config) -> PgLocation | None:
    """The account's schema when `state:` is a PostgreSQL URL, None for a file."""
    if config.state_url is None:
        return None
    return PgLocation.parse(config.state_url, config.account)


@contextmanager
def open_state(config: Config, dry_run: bool = False) -> Iterator[State]:
    location = pg_location(config)
    if location is None:
        with State.open(config.state, dry_run=dry_run) as state:
            yield state
    else:
        with State.open_postgres(location, dry_run=dry_run) as state:
            yield state


def run_lock(config: Config) -> FileLock | PgLock:
    """The lock two runs of the account never both hold (FileLock beside a file)."""
    location = pg_location(config)
    return FileLock.beside(config.state) if location is None else PgLock(location)
