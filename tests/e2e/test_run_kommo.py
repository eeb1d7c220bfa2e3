"""End to end against the Kommo sandbox: pull since a cursor, stages, dry run, backfill, lock,
errors."""

import os
import sqlite3
import stat

import pytest

from kommo_sync.report import iso
from kommo_sync.state import run_lock
from kommo_sync.window import CONTACTS as CONTACTS_CURSOR
from tests.conftest import BACKENDS, KOMMO_TOKEN, assert_no_secret


def cursor(world):
    with sqlite3.connect(world.raw["state"]) as db:
        row = db.execute("SELECT value FROM cursors WHERE name = ?", (CONTACTS_CURSOR,)).fetchone()
    return row[0] if row else None


def test_first_run_reports_each_contact_with_stage_tag_and_deciding_lead(world, sales):
    ada = world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io", consent=True)
    bob = world.kommo.add_contact("Bob", "Stone", email="bob@stone.io")
    nolead = world.kommo.add_contact("Nia", "Ray", email=None)
    world.kommo.add_lead(
        "Engines", 5000, sales, world.status_id(sales, "Proposal"), contact_ids=[ada]
    )
    world.kommo.add_lead("Old deal", 100, sales, 143, contact_ids=[bob])
    code, body = world.cli_json("run")
    assert code == 0
    rows = {row["contact_id"]: row for row in body["people"]}
    assert rows[ada]["stage"] == "in_progress" and rows[ada]["tag"] == "In Progress"
    assert rows[ada]["deal"] == "Engines"
    assert rows[bob]["stage"] == "lost" and rows[bob]["tag"] == "Lost Lead"
    assert rows[nolead]["stage"] == "new" and rows[nolead]["email"] is None
    assert body["counts"]["pulled_contacts"] == 3
    assert body["window"]["to"] == iso(cursor(world))


def test_second_run_with_nothing_changed_sees_no_change_and_asks_each_empty_list_twice(
    world, sales
):
    """An empty list (Kommo's 204) is confirmed by a second request: a stray 204 would otherwise
    end the read early and move the cursor past what was never read."""
    for i in range(5):
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io")
    world.run()
    world.clock.advance(3600)
    before = len(world.kommo.log)
    result = world.run()
    assert result.counts["changed_contacts"] == 0 and result.counts["people"] == 0
    paths = [r.path for r in world.kommo.log[before:]]
    assert paths.count("/api/v4/contacts") == 1  # the overlap re-read: one short page
    assert paths.count("/api/v4/leads") == 2  # no lead: the empty answer, confirmed


def test_overlap_is_re_read_and_de_duplicated_and_edits_are_picked_up(world, sales):
    ada = world.kommo.add_contact("Ada", email="ada@analytical.io")
    first = world.run()
    world.clock.advance(10)  # inside the overlap below the cursor
    world.kommo.update_contact(ada, first_name="Augusta")
    second = world.run()
    assert second.window[0] == first.window[1] - 300  # the overlap is re-read
    assert second.counts["pulled_contacts"] == 1 and second.counts["changed_contacts"] == 1
    assert second.people[0].contact_id == ada
    world.clock.advance(10)
    third = world.run()  # Augusta is in the overlap again, unchanged
    assert third.counts["pulled_contacts"] == 1 and third.counts["changed_contacts"] == 0


def test_frozen_window_leaves_records_updated_after_run_start_to_the_next_run(world, sales):
    world.kommo.add_contact("Early", email="early@firm.io")
    result = world.run()
    world.clock.advance(5)
    late = world.kommo.add_contact("Late", email="late@firm.io")
    requests_seen = [
        r for r in world.kommo.requests("GET", "/api/v4/contacts") if r.path == "/api/v4/contacts"
    ]
    assert all(int(r.query["filter[updated_at][to]"][0]) == result.window[1] for r in requests_seen)
    assert late not in {row.contact_id for row in result.people}
    assert late in {row.contact_id for row in world.run().people}


def test_a_lead_change_alone_restages_its_contact(world, sales):
    ada = world.kommo.add_contact("Ada", email="ada@analytical.io")
    deal = world.kommo.add_lead("Engines", 5000, sales, contact_ids=[ada])
    assert world.run().people[0].stage == "new"
    world.clock.advance(60)
    world.kommo.move_lead(deal, 142)
    rows = world.run().people
    assert [(r.contact_id, r.stage, r.tag) for r in rows] == [(ada, "won", "Customer")]


def test_paging_reads_every_contact_across_full_pages_and_ends_on_a_short_page(world, sales):
    ids = {world.kommo.add_contact(f"C{i}", email=f"c{i}@firm.io") for i in range(520)}
    result = world.run()
    assert result.counts["pulled_contacts"] == 520 and result.counts["people"] == 520
    pages = [
        int(r.query["page"][0])
        for r in world.kommo.requests("GET", "/api/v4/contacts")
        if "filter[updated_at][from]" in r.query
    ]
    assert pages == [1, 2, 3]  # 250 + 250 + 20: the short page ends it
    assert {row.contact_id for row in result.people} == ids


def test_dry_run_writes_nothing_to_the_state(world, sales):
    world.kommo.add_contact("Ada", email="ada@analytical.io")
    world.run()
    world.clock.advance(60)
    world.kommo.add_contact("Bob", email="bob@stone.io")
    snapshot = _dump(world)
    code, body = world.cli_json("run", "--dry-run")
    assert code == 0 and body["dry_run"] is True
    assert [row["email"] for row in body["people"]] == ["bob@stone.io"]
    assert _dump(world) == snapshot


def test_dry_run_on_a_fresh_machine_creates_no_state_file(world, sales):
    world.kommo.add_contact("Ada", email="ada@analytical.io")
    code, body = world.cli_json("run", "--dry-run")
    assert code == 0 and len(body["people"]) == 1
    assert not os.path.exists(world.raw["state"])


def test_backfill_replays_a_range_and_leaves_the_cursor(world, sales):
    world.kommo.add_contact("Ada", email="ada@analytical.io")
    world.run()
    saved = cursor(world)
    result = world.cli("backfill", "--since", "2025-12-31", "--until", "2026-01-02T00:00:00+00:00")
    assert result.exit_code == 0, result.output
    assert cursor(world) == saved
    query = [
        r for r in world.kommo.requests("GET", "/api/v4/contacts") if r.path == "/api/v4/contacts"
    ][-1].query
    assert query["filter[updated_at][from]"] == ["1767139200"]


def test_backfill_rejects_an_until_before_since(world, sales):
    result = world.cli("backfill", "--since", "2026-02-01", "--until", "2026-01-01")
    assert result.exit_code == 2 and "--until must be after --since" in result.output


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_a_second_run_while_the_lock_is_held_exits_3(world, sales):
    lock = run_lock(world.config())
    lock.acquire()
    try:
        result = world.cli("run")
    finally:
        lock.release()
    assert result.exit_code == 3 and "another kommo-sync run" in result.output


def test_a_revoked_token_exits_4_with_a_message_that_says_so_and_no_token(world, sales):
    result = world.cli("run", env={"KOMMO_TOKEN": "revoked-token-9999"})
    assert result.exit_code == 4
    assert "expired or was revoked" in result.output
    assert "revoked-token-9999" not in result.output
    assert_no_secret(result.output)


def test_a_missing_consent_field_is_a_config_error_not_nobody_consents(world, sales):
    world.raw["kommo"]["consent_field"] = "Marketing OK"
    result = world.cli("run")
    assert result.exit_code == 2
    assert "kommo.consent_field: no contact field 'Marketing OK'" in result.output


def test_without_a_consent_field_every_report_warns(world, sales):
    del world.raw["kommo"]["consent_field"]
    world.kommo.add_contact("Ada", email="ada@analytical.io")
    code, body = world.cli_json("run")
    assert code == 0 and "consent is not tracked" in body["warnings"][0]


def test_repeated_429s_stop_the_run_with_exit_4_and_the_cursor_stays(world, sales):
    world.kommo.add_contact("Ada", email="ada@analytical.io")
    world.kommo.fail_next(10, 429)
    result = world.cli("run")
    assert result.exit_code == 4 and "429" in result.output
    assert cursor(world) is None


def test_state_file_is_private_and_status_shows_runs_and_cursors(world, sales):
    world.kommo.add_contact("Ada", email="ada@analytical.io")
    world.cli("run")
    assert stat.S_IMODE(os.stat(world.raw["state"]).st_mode) == 0o600
    result = world.cli("status")
    assert result.exit_code == 0
    assert "kommo.updated_at" in result.output and "Last runs" in result.output
    assert_no_secret(result.output)


def test_pacing_keeps_kommo_under_its_limit(world, sales):
    for i in range(600):
        world.kommo.add_contact(f"C{i}", email=f"c{i}@firm.io")
    world.run()
    assert not [r for r in world.kommo.log if r.status == 429]
    assert all(KOMMO_TOKEN not in str(r.query) for r in world.kommo.log)


def _dump(world):
    with sqlite3.connect(world.raw["state"]) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables}


def test_verbose_logs_show_requests_but_no_secret(world, sales):
    world.with_mailchimp().with_klaviyo()
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    result = world.cli("-v", "run")
    assert result.exit_code == 0
    assert "Kommo GET /api/v4/contacts -> 200" in result.output
    assert "Mailchimp PUT" in result.output
    assert_no_secret(result.output)


def test_a_misspelt_pipeline_stops_the_run_before_anything_is_pushed(world, sales):
    """Filtering on a pipeline the account lacks would make every lead vanish and strip every
    customer's tag: the run refuses it, naming the key and the pipeline meant."""
    world.with_mailchimp()
    world.raw["kommo"]["pipelines"] = ["Salse"]
    world.kommo.add_contact("Ada", email="ada@firm.io", consent=True)
    result = world.cli("run")
    assert result.exit_code == 2
    assert "kommo.pipelines[0]: no pipeline 'Salse' (did you mean 'Sales'?)" in result.output
    assert world.mailchimp.writes() == []


def test_the_cli_collects_garbage_rarely_during_a_run_only(world, sales, monkeypatch):
    import gc

    from kommo_sync.engine import Engine

    seen = []
    real_run = Engine.run

    def run(self, options):
        seen.append(gc.get_threshold())
        return real_run(self, options)

    monkeypatch.setattr(Engine, "run", run)
    before = gc.get_threshold()
    world.with_mailchimp()
    assert world.cli("run").exit_code == 0
    assert seen == [(100_000, 50, 100)]
    assert gc.get_threshold() == before  # the process's own setting is back
    world.run()  # the engine itself (what the Python API calls) leaves it alone
    assert seen[-1] == before
