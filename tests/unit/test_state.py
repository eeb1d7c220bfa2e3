"""The state file's encoding and schema upgrades, without HTTP."""

import inspect
import json
import sqlite3

import pytest

from kommo_sync.encoding import compact_json
from kommo_sync.state import (
    MIGRATIONS,
    SCHEMA_VERSION,
    State,
    StateStore,
    contact_from_json,
    contact_to_row,
)
from tests.factories import contact


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1.5, None, True, "x"], "ü": 'Grüße \u2028 "q"'},
        [1, 2, {"nested": {"z": 0, "y": -3}}],
        "lone \ud800 surrogate",
        {"when": __import__("datetime").date(2026, 1, 2)},
    ],
)
def test_compact_json_writes_exactly_what_json_dumps_writes(value):
    for sort_keys in (False, True):
        assert compact_json(sort_keys=sort_keys, default=str)(value) == json.dumps(
            value, separators=(",", ":"), sort_keys=sort_keys, default=str
        )


def test_a_mirror_row_reads_back_as_the_same_contact():
    original = contact(
        id=7, emails=("ada@analytical.io", "a@b.io"), consent=True, last_name="Grüße"
    )
    assert contact_from_json(contact_to_row(original)[4]) == original


def test_a_state_file_of_schema_1_upgrades_and_keeps_its_rows(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO cursors VALUES ('kommo.updated_at', 1767225600)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with State.open(path) as state:
        assert state.cursor("kommo.updated_at") == 1767225600
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert not db.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'contacts_by_company'"
    ).fetchall()


def parameters(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_sqlite_state_has_every_operation_of_the_store_interface():
    operations = [
        name
        for name, member in vars(StateStore).items()
        if inspect.isfunction(member) and not name.startswith("_")
    ]
    assert len(operations) > 50
    for name in operations:
        assert parameters(getattr(State, name)) == parameters(getattr(StateStore, name)), name


def test_the_last_finished_run_skips_running_rows_and_codes_not_asked_for(any_state):
    with any_state.open() as state:
        assert state.last_finished_run((0, 1)) is None and state.run_counts() == {}
        for code, status, at in ((4, "failed", 100), (0, "done", 200), (143, "interrupted", 300)):
            state.finish_run(state.start_run("run", at - 10), status, at, {}, code, None)
        state.start_run("run", 400)  # still running: not finished
        assert state.last_finished_run((0, 1, 2, 4)) == {"exit_code": 0, "finished_at": 200}
        assert state.last_finished_run((4,)) == {"exit_code": 4, "finished_at": 100}
        assert state.run_counts() == {"failed": 1, "done": 1, "interrupted": 1, "running": 1}
