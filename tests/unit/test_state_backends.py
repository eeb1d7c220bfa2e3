"""The state's two backends: the same schema at every version, the same answers from the same
operations, the PostgreSQL run lock, and where an account's schema lives."""

import sqlite3

import psycopg
import pytest

from kommo_sync.config import parse_config
from kommo_sync.errors import LockedError
from kommo_sync.masking import scrub
from kommo_sync.model import Company
from kommo_sync.state import MIGRATIONS, SCHEMA_VERSION, State, contact_to_row, lead_to_row
from kommo_sync.state.dialect import PostgresDialect, SqliteDialect
from kommo_sync.state.pg_lock import PgLock
from kommo_sync.state.pg_migrations import PG_MIGRATIONS
from kommo_sync.state.postgres import PgConnection, PgLocation, set_schema_version
from kommo_sync.state.rows import company_to_row
from tests.conftest import BACKENDS, fresh_schema_url
from tests.factories import contact, lead

TYPES = {"INTEGER": "BIGINT", "TEXT": "TEXT"}


def sqlite_schema(version):
    db = sqlite3.connect(":memory:")
    for script in MIGRATIONS[:version]:
        db.executescript(script)
    dialect = SqliteDialect()
    return {t: [(n, TYPES[k]) for n, k in dialect.columns(db, t)] for t in dialect.tables(db)}


def pg_schema(url, version):
    location = PgLocation.parse(fresh_schema_url(url), "x")
    db = PgConnection(psycopg.connect(location.url, autocommit=True))
    try:
        db.execute(f"CREATE SCHEMA {location.schema}")
        db.execute(f"SET search_path TO {location.schema}")
        for script in PG_MIGRATIONS[:version]:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
        dialect = PostgresDialect()
        return {t: dialect.columns(db, t) for t in dialect.tables(db)}
    finally:
        db.close()


def test_every_sqlite_migration_has_its_postgres_text():
    assert len(PG_MIGRATIONS) == len(MIGRATIONS) == SCHEMA_VERSION


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION + 1))
def test_both_backends_give_the_same_tables_and_columns_at_every_version(postgres_url, version):
    assert pg_schema(postgres_url, version) == sqlite_schema(version)


@pytest.fixture(params=BACKENDS)
def opened(request, tmp_path):
    """A function that opens one fresh state (the same one each call) on the backend."""
    if request.param == "sqlite":
        return lambda dry_run=False: State.open(tmp_path / "state.db", dry_run=dry_run)
    location = PgLocation.parse(fresh_schema_url(request.getfixturevalue("postgres_url")), "x")
    return lambda dry_run=False: State.open_postgres(location, dry_run=dry_run)


def test_the_same_operations_give_the_same_answers(opened):
    ada, bob = contact(id=1, emails=("ada@x.io",)), contact(id=2, emails=("bob_@x.io",))
    with opened() as state, state.transaction():
        state.set_cursor("contacts", 5)
        state.set_cursor("contacts", 7)
        state.upsert_contacts([contact_to_row(ada), contact_to_row(bob)])
        state.upsert_companies([company_to_row(Company(9, 3, "Acme"))])
        assert state.mark_all_dirty() == 2
        assert state.mark_all_dirty() == 0
        state.record_pushed("mailchimp", [(1, "f1", {"status": "subscribed", "a": 1})])
        state.set_pushed_status("mailchimp", [1], "unsubscribed")
        state.record_rejection("mailchimp", 2, "transient", "busy", "f", "bob_@x.io", None, 10)
        state.record_rejection("mailchimp", 2, "transient", "again", "f", "bob_@x.io", None, 20)
        state.set_meta("mailchimp", "tags", [1])
        state.set_meta("mailchimp", "tags", [2])
        state.note_own_optouts("mailchimp", ["Ada@x.io"], 3)
        state.note_own_optouts("mailchimp", ["ada@x.io"], 4)
    with opened() as state:
        run = state.start_run("sync", 100)
        assert state.start_run("sync", 101) == run + 1
        assert state.cursors() == {"contacts": 7}
        assert list(state.ready_batches(1)) == [[1], [2]]
        assert state.pushed("mailchimp", [1])[1] == {"a": 1, "status": "unsubscribed"}
        assert state.rejection_list()[0]["first_seen"] == 10
        assert state.rejections("mailchimp", [2]) == {2: ("transient", "f")}
        assert state.meta("mailchimp", "tags") == [2]
        assert state.own_optouts("mailchimp", ["ADA@x.io"]) == {"ada@x.io": 4}
        assert state.companies([9])[9].name == "Acme"
        assert state.contacts_with_email(["BOB_@x.io"]).keys() == {2}
        assert state.queue_retries(False)[0]["contact_id"] == 2
        assert state.rejections("mailchimp", [2]) == {2: ("retry", "f")}


def test_moved_records_never_overwrite_what_the_twin_has(opened):
    with opened() as state, state.transaction():
        state.record_pushed("mailchimp", [(1, "old", {}), (2, "twin", {})])
        state.record_pushed("klaviyo", [(1, "old", {})])
        assert state.move_pushed([(1, 2)]) == 1
    with opened() as state:
        assert state.pushed("mailchimp", [1, 2]) == {2: {}}
        assert state.pushed("klaviyo", [1, 2]) == {2: {}}


def test_a_changed_pipeline_requeues_the_contacts_of_its_leads(opened):
    deal, other = lead(id=5, pipeline_id=77, contact_ids=(1,)), lead(id=6, pipeline_id=8)
    with opened() as state, state.transaction():
        state.upsert_leads([deal, other], [lead_to_row(deal), lead_to_row(other)])
        assert state.requeue_leads_of_pipelines([77]) == 1
        assert state.requeue_leads_of_pipelines([77]) == 0
        assert state.dirty_count() == 1


def test_forgetting_erases_the_persons_rows_in_every_table(opened):
    ada, bob = contact(id=1, emails=("ada@x.io",)), contact(id=2, emails=("bob@x.io",))
    with opened() as state, state.transaction():
        state.upsert_contacts([contact_to_row(ada), contact_to_row(bob)])
        state.mark_all_dirty()
        state.suppress([("ada@x.io", "mailchimp", 1)])
    with opened() as state:
        erased = state.erase_person([1], ["ada@x.io"])
        state.compact()
        assert erased == {"contacts": 1, "dirty": 1, "suppressed": 1}
        assert state.mirrored_contact_ids() == [2]


def test_a_dry_run_changes_nothing(opened):
    with opened(dry_run=True) as state:
        state.set_cursor("contacts", 1)
        state.start_run("sync", 1)
    with opened() as state:
        assert state.cursors() == {}
        assert state.last_runs() == []


def test_the_schema_is_named_after_the_account_unless_the_url_names_one():
    assert PgLocation.parse("postgresql://h/db", "Acme-EU 2").schema == "kommo_sync_acme_eu_2"
    given = PgLocation.parse("postgresql://h/db?schema=crm&sslmode=require", "Acme")
    assert (given.schema, given.url) == ("crm", "postgresql://h/db?sslmode=require")


def test_the_urls_password_is_a_secret_masking_scrubs():
    raw = {
        "kommo": {"base_url": "http://localhost", "token": "t0ken"},
        "state": "postgresql://sync:s3cr%40t@db.example/crm",
    }
    config = parse_config(raw, {})
    assert config.state_url == raw["state"]
    assert "s3cr" not in scrub("auth s3cr@t and s3cr%40t failed", config.secrets)


def test_a_schema_written_by_a_newer_release_is_refused(postgres_url):
    location = PgLocation.parse(fresh_schema_url(postgres_url), "x")
    with State.open_postgres(location) as state:
        set_schema_version(state.db, SCHEMA_VERSION + 1)
    with pytest.raises(Exception, match="newer kommo-sync") as caught:
        State.open_postgres(location).__enter__()
    assert caught.value.key == "state"


def test_a_second_run_finds_the_postgres_lock_held_and_names_its_holder(postgres_url):
    location = PgLocation.parse(fresh_schema_url(postgres_url), "x")
    first, second = PgLock(location), PgLock(location)
    assert first.holder() is None
    first.acquire(started_at=1_700_000_000)
    try:
        with pytest.raises(LockedError, match=r"pid \d+ on .*since 2023-11-14"):
            second.acquire()
        assert first.holder().started_at == 1_700_000_000
    finally:
        first.release()
    assert second.holder() is None
    second.acquire()
    second.release()


def test_an_unreachable_database_is_a_config_error_naming_it_without_the_password(tmp_path):
    location = PgLocation.parse(f"postgresql://u:pw-9@/crm?host={tmp_path}", "x")
    with pytest.raises(Exception, match="cannot connect to PostgreSQL") as caught:
        State.open_postgres(location).__enter__()
    assert caught.value.key == "state"
    assert "pw-9" not in str(caught.value)
