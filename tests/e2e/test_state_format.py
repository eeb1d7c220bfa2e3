"""Upgrades are invisible: a state written by the code before the structural step (fixtures/,
written at commit 45a5a4a by fixtures/make_state_before_step.py) plans 0 operations with today's
code, over the same deterministic world; its fingerprints are what today's plans compute, the
same runs today write the same rows, and a state made today has the very same schema."""

import json
import re
import sqlite3
import tempfile
from pathlib import Path

import pytest

from kommo_sync import window
from kommo_sync.app import build_engine
from kommo_sync.memory import DestinationMemory
from kommo_sync.mirror import people_of
from kommo_sync.state import SCHEMA_VERSION, State
from kommo_sync.state.migrations import MIGRATIONS
from tests.e2e.fixtures.make_state_before_step import run_at
from tests.e2e.fixtures.world_before_step import (
    FIRST_RUN_AT,
    NEXT_RUN_AT,
    SECOND_RUN_AT,
    kommo_digest,
    move_clock_to,
    mutate,
    seed,
)

FIXTURES = Path(__file__).parent / "fixtures"
DUMP = FIXTURES / "state_before_step.sql"


def schema_of(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
    ).fetchall()


def fixture_schema() -> list[tuple[str, str, str]]:
    db = sqlite3.connect(":memory:")
    db.executescript(DUMP.read_text())
    try:
        return schema_of(db)
    finally:
        db.close()


@pytest.fixture
def upgraded(world):
    """Today's sandboxes holding the fixture's world, the clock at the next run, and the state
    file loaded from the dump."""
    seed(world)
    move_clock_to(world, FIRST_RUN_AT)
    mutate(world)
    move_clock_to(world, NEXT_RUN_AT)
    db = sqlite3.connect(world.raw["state"])
    db.executescript(DUMP.read_text())
    db.close()
    return world


def queue_everyone(world) -> None:
    db = sqlite3.connect(world.raw["state"])
    with db:
        db.execute("INSERT OR IGNORE INTO dirty SELECT id, 0 FROM contacts")
    db.close()


def stored_fingerprints(world, destination: str) -> dict[int, str]:
    db = sqlite3.connect(world.raw["state"])
    try:
        rows = db.execute(
            "SELECT person_id, fingerprint FROM pushed WHERE destination = ?", (destination,)
        )
        return dict(rows.fetchall())
    finally:
        db.close()


def test_todays_sandboxes_serve_the_world_the_fixture_was_written_in(upgraded):
    written = json.loads((FIXTURES / "kommo_before_step.json").read_text())
    assert kommo_digest(upgraded.kommo) == written


def test_the_next_dry_run_plans_no_operation_for_any_destination(upgraded):
    code, body = upgraded.cli_json("run", "--dry-run")
    assert code == 0, body
    assert body["operations"] == [] and body["people"] == []
    assert body["destinations"] == {
        "mailchimp": {"status": "ok", "reason": ""},
        "klaviyo": {"status": "ok", "reason": ""},
    }


def test_a_record_read_again_is_stored_whole_once_and_plans_nothing(upgraded):
    """Issue 14: the mirror keeps every custom field, tag and date; an old row read again is
    written in the new format once (nothing is pushed for it), and then matches byte for byte."""
    code, body = upgraded.cli_json("backfill", "--since", "2020-01-01")
    assert code == 0, body
    counts = body["counts"]
    assert (counts["pulled_contacts"], counts["pulled_leads"]) == (36, 45)
    assert (counts["changed_contacts"], counts["changed_leads"]) == (36, 45)
    assert body["operations"] == [] and counts["pushed"] == 0
    code, again = upgraded.cli_json("backfill", "--since", "2020-01-01", "--dry-run")
    assert code == 0, again
    assert (again["counts"]["changed_contacts"], again["counts"]["changed_leads"]) == (0, 0)


def test_with_every_contact_queued_the_dry_run_still_plans_no_operation(upgraded):
    queue_everyone(upgraded)
    code, body = upgraded.cli_json("run", "--dry-run")
    assert code == 0, body
    assert len(body["people"]) == 35  # every person of the 36 contacts (two share an email)
    assert body["operations"] == []
    planned = {key for key in body["counts"] if key.startswith(("mailchimp.", "klaviyo."))}
    assert planned == {
        "mailchimp.skipped.no_email",
        "mailchimp.still_rejected",
        "klaviyo.skipped.no_email",
        "klaviyo.skipped.bad_phone",
        "klaviyo.still_rejected",
    }


@pytest.mark.parametrize("destination", ["mailchimp", "klaviyo"])
def test_the_stored_fingerprints_are_what_todays_plan_computes(upgraded, destination):
    engine = build_engine(upgraded.config(), upgraded.clock)
    chosen = next(d for d in engine.destinations if d.name == destination)
    catalog = engine.kommo.catalog()
    stored = stored_fingerprints(upgraded, destination)
    with State.open(Path(upgraded.raw["state"]), dry_run=True) as state:
        chosen.prepare(DestinationMemory(state, destination), dry_run=True)
        people = people_of(state, list(state.contacts(stored)), catalog, state.company_names)
        as_new = chosen.plan(people, {}, set())
    computed = {c.person_id: c.fingerprint for c in as_new.changes if c.person_id in stored}
    assert len(stored) == 28 and computed == stored


def rows_of_fixture_tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the tables the fixture has, in the fixture's columns (later migrations may
    add tables and columns; what version 4 stored must stay), the runs' own rows aside (counts
    and times are the report's, free to grow new keys)."""
    old = sqlite3.connect(":memory:")
    old.executescript(DUMP.read_text())
    columns = {
        table: [row[1] for row in old.execute(f'PRAGMA table_info("{table}")')]
        for (table,) in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if table not in ("runs", "sqlite_sequence")
    }
    old.close()
    db = sqlite3.connect(path)
    try:
        return {
            table: db.execute(
                f'SELECT {", ".join(cols)} FROM "{table}" ORDER BY {", ".join(cols)}'
            ).fetchall()
            for table, cols in columns.items()
        }
    finally:
        db.close()


def fixture_rows() -> dict[str, list[tuple[object, ...]]]:
    path = Path(tempfile.mkdtemp()) / "fixture.db"
    db = sqlite3.connect(path)
    db.executescript(DUMP.read_text())
    db.close()
    return rows_of_fixture_tables(path)


def test_the_same_two_runs_today_write_the_same_state_row_for_row(world):
    seed(world)
    run_at(world, FIRST_RUN_AT)
    mutate(world)
    run_at(world, SECOND_RUN_AT)
    assert comparable(rows_of_fixture_tables(Path(world.raw["state"]))) == comparable(
        fixture_rows()
    )


CLOCK_DERIVED = re.compile(r'"profile_id":"[0-9A-Z]{26}"')  # Klaviyo ids are ULIDs of the time
CURSORS_ADDED_SINCE = {window.LIFECYCLE, window.LIFECYCLE + window.START, window.WHOLE}
FIELDS_BEFORE = {"contacts": 9, "leads": 9}  # a mirror row's fields then; issue 14 appends


def comparable(tables: dict[str, list[tuple[object, ...]]]) -> dict[str, list[tuple[object, ...]]]:
    """The rows, less what the run's timing decides rather than the format: cursors added by
    later releases (the lifecycle read), when suppressions were last read, how long the vendors'
    jobs took (kept since issue 15), the ULIDs Klaviyo
    derives from the time (each extra Kommo request moves the simulated clock on a slot); mirror
    rows compared on the fields they had then (later releases append fields)."""
    return {
        table: [_masked(_as_then(table, row)) for row in rows if not _timing(table, row)]
        for table, rows in tables.items()
    }


def _as_then(table: str, row: tuple[object, ...]) -> tuple[object, ...]:
    count = FIELDS_BEFORE.get(table)
    if count is None or not isinstance(row[-1], str):
        return row
    return (*row[:-1], json.dumps(json.loads(row[-1])[:count], separators=(",", ":")))


def _timing(table: str, row: tuple[object, ...]) -> bool:
    if table == "cursors":
        return row[0] in CURSORS_ADDED_SINCE
    return table == "destination_meta" and row[1] in ("suppressions_read_at", "job_times")


def _masked(row: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(CLOCK_DERIVED.sub('"profile_id":"…"', v) if isinstance(v, str) else v for v in row)


def test_the_first_four_migrations_still_make_the_schema_of_the_one_made_before():
    """Released migration scripts are never edited: run today, the first four make exactly the
    schema the state before the step had (later versions only add to it)."""
    db = sqlite3.connect(":memory:")
    try:
        for script in MIGRATIONS[:4]:
            db.executescript(script)
        assert schema_of(db) == fixture_schema()
    finally:
        db.close()


def test_opening_the_old_state_brings_it_forward_and_keeps_every_row(upgraded):
    path = Path(upgraded.raw["state"])
    before = rows_of_fixture_tables(path)
    with State.open(path):
        pass
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        dropped = {name for _, name, _ in fixture_schema()} - {name for _, name, _ in schema_of(db)}
        assert dropped == set()  # later versions add; none drops what version 4 had
    finally:
        db.close()
    assert rows_of_fixture_tables(path) == before


def test_a_field_map_on_an_old_mirror_reads_kommo_whole_once(upgraded):
    """Rows kept from before issue 14 lack custom fields and tags: the first run with a map
    reads Kommo whole (so no value is wrongly cleared downstream), later runs are incremental."""
    upgraded.raw["mailchimp"]["fields"] = [{"from": "lead.price", "to": "DEALVALUE"}]
    code, first = upgraded.cli_json("run")
    assert code in (0, 1), first
    assert any("reads Kommo whole once" in w for w in first["warnings"])
    assert first["window"]["from"].startswith("1970-01-01")
    assert first["counts"]["pulled_contacts"] == 36
    upgraded.clock.advance(600)
    code, second = upgraded.cli_json("run")
    assert not any("whole once" in w for w in second["warnings"])
    assert not second["window"]["from"].startswith("1970-01-01")
