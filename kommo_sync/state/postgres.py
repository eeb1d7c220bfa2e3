"""The state in PostgreSQL (`state: postgresql://…`): one schema per account, the same tables
and schema versions as the SQLite file, behind the same connection methods the tables use.

The account's schema is `kommo_sync_<account>` unless the URL says `?schema=`; it is created if
missing and put first on the connection's search_path. Its version lives in a one-row table,
`kommo_sync_version`. A dry run is one transaction, rolled back (the schema's creation too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from kommo_sync.config_reader import reason_of
from kommo_sync.errors import ConfigError
from kommo_sync.state.migrations import SCHEMA_VERSION
from kommo_sync.state.pg_migrations import PG_MIGRATIONS

URL_SCHEMES = ("postgresql://", "postgres://")
VERSION_TABLE = "kommo_sync_version"

if TYPE_CHECKING:  # psycopg is the `postgres` extra: imported only when a URL is used
    import psycopg


def is_postgres_url(text: str) -> bool:
    return text.startswith(URL_SCHEMES)


def url_secrets(url: str | None) -> list[str]:
    """The URL's password as written and decoded, and the URL itself, for masking."""
    if not url:
        return []
    password = urlsplit(url).password
    return [url, password, unquote(password)] if password else [url]


@dataclass(frozen=True)
class PgLocation:
    """Where an account's state lives: a libpq URL (without our `schema` parameter) and a schema."""

    url: str
    schema: str

    @classmethod
    def parse(cls, url: str, account: str) -> PgLocation:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        given = [value for key, value in query if key == "schema"]
        rest = urlencode([(key, value) for key, value in query if key != "schema"])
        schema = given[-1] if given else "kommo_sync_" + re.sub(r"[^a-z0-9_]", "_", account.lower())
        return cls(urlunsplit(parts._replace(query=rest)), schema)

    def where(self) -> str:
        """The database and schema, for messages (never the password)."""
        parts = urlsplit(self.url)
        host = parts.hostname or dict(parse_qsl(parts.query)).get("host", "localhost")
        return f"schema {self.schema} of {parts.path.lstrip('/') or 'postgres'} on {host}"


def connect_pg(location: PgLocation) -> psycopg.Connection[Any]:
    """An autocommit connection (transactions are explicit, as with SQLite), or a ConfigError
    naming the database: libpq's own reason never holds the password."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "state", "a PostgreSQL state needs psycopg: pip install 'kommo-sync[postgres]'"
        ) from None
    try:
        return psycopg.connect(location.url, autocommit=True)
    except psycopg.Error as exc:
        raise ConfigError(
            "state", f"cannot connect to PostgreSQL ({location.where()}): {reason_of(exc)}"
        ) from None


@lru_cache(maxsize=512)
def _paramstyle(text: str) -> str:
    """The tables' `?` placeholders in psycopg's style (a literal `%` doubled)."""
    return text.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection with the few sqlite3.Connection methods the state's tables use."""

    def __init__(self, conn: psycopg.Connection[Any]):
        self._conn = conn

    def execute(self, text: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        if params is None:
            return self._conn.execute(text)
        return self._conn.execute(_paramstyle(text), params)

    def executemany(self, text: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self._conn.cursor()
        cursor.executemany(_paramstyle(text), list(rows))
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status.name != "IDLE"

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()


def prepare_schema(db: PgConnection, location: PgLocation) -> None:
    """Create the account's schema if missing, put it on the search_path, refuse a newer one."""
    schema = quoted(location.schema)
    db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    db.execute(f"SET search_path TO {schema}")
    db.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version BIGINT NOT NULL)")
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            "state",
            f"{location.where()} was written by a newer kommo-sync (schema {version}; "
            f"this release knows {SCHEMA_VERSION}): upgrade kommo-sync",
        )


def quoted(name: str) -> str:
    """An SQL identifier, quoted (a schema named in the URL may hold any character)."""
    return '"' + name.replace('"', '""') + '"'


def schema_version(db: PgConnection) -> int:
    row = db.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()
    return int(row[0]) if row else 0


def set_schema_version(db: PgConnection, number: int) -> None:
    db.execute(f"DELETE FROM {VERSION_TABLE}")
    db.execute(f"INSERT INTO {VERSION_TABLE} VALUES (?)", (number,))


def pending_migrations(db: PgConnection) -> list[tuple[int, str]]:
    version = schema_version(db)
    return list(enumerate(PG_MIGRATIONS[version:], start=version + 1))
