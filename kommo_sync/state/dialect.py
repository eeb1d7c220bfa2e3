"""The little SQL that differs between the state's backends (SQLite, PostgreSQL).

The table mixins write portable SQL (`INSERT ... ON CONFLICT`, `RETURNING`, `?` placeholders);
the few expressions and maintenance steps with no common spelling are asked of the dialect.
"""

from __future__ import annotations

from typing import Any, Protocol


class Dialect(Protocol):
    begin: str  # starts a write transaction

    def json_int(self, column: str, index: int) -> str:
        """The integer at `index` of the JSON array held in `column`."""

    def json_set_status(self, column: str) -> str:
        """`column`'s JSON object with its `status` set to the next parameter."""

    def contains(self, text: str) -> str:
        """True when the next parameter occurs in the text expression `text`."""

    def tables(self, db: Any) -> list[str]:
        """The state's own tables, by name (never the backend's bookkeeping)."""

    def columns(self, db: Any, table: str) -> list[tuple[str, str]]:
        """(name, upper-case declared type) of a table's columns, in order."""

    def secure_delete(self, db: Any) -> None:
        """Make deleted rows' bytes go (where the backend can)."""

    def compact(self, db: Any) -> None:
        """Give back the space of deleted rows so no erased byte lingers in the file."""


class SqliteDialect:
    begin = "BEGIN IMMEDIATE"

    def json_int(self, column: str, index: int) -> str:
        return f"json_extract({column}, '$[{index}]')"

    def json_set_status(self, column: str) -> str:
        return f"json_set({column}, '$.status', ?)"

    def contains(self, text: str) -> str:
        return f"instr({text}, ?) > 0"

    def tables(self, db: Any) -> list[str]:
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
        return [name for (name,) in rows]

    def columns(self, db: Any, table: str) -> list[tuple[str, str]]:
        return [(row[1], row[2].upper()) for row in db.execute(f"PRAGMA table_info({table})")]

    def secure_delete(self, db: Any) -> None:
        db.execute("PRAGMA secure_delete = ON")

    def compact(self, db: Any) -> None:
        db.execute("PRAGMA secure_delete = ON")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# the tables PostgreSQL's backend keeps for itself beside the state's (schema version, lock holder)
PG_OWN_PREFIX = "kommo_sync_"


class PostgresDialect:
    begin = "BEGIN"

    def json_int(self, column: str, index: int) -> str:
        return f"(({column})::jsonb ->> {index})::bigint"

    def json_set_status(self, column: str) -> str:
        return f"jsonb_set(({column})::jsonb, '{{status}}', to_jsonb(?::text))::text"

    def contains(self, text: str) -> str:
        return f"strpos({text}, ?) > 0"

    def tables(self, db: Any) -> list[str]:
        rows = db.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
            "ORDER BY table_name"
        )
        return [name for (name,) in rows if not name.startswith(PG_OWN_PREFIX)]

    def columns(self, db: Any, table: str) -> list[tuple[str, str]]:
        rows = db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [(name, kind.upper()) for name, kind in rows]

    def secure_delete(self, db: Any) -> None:
        """Nothing to switch on: a deleted row's bytes go when VACUUM reclaims its page."""

    def compact(self, db: Any) -> None:
        if not db.in_transaction:  # VACUUM cannot run in one (a dry run's)
            db.execute(f"VACUUM {', '.join(self.tables(db))}")
