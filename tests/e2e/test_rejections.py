"""Issue 13, rejections: `rejections` lists and exports them, `retry` re-queues them for the next
run, `rejections --clear` acknowledges them; the writes wait for no run (the lock: exit 3)."""

import csv
import io
import json

import pytest

from kommo_sync.sandbox.faults import Fault
from kommo_sync.sandbox.mailchimp import rules
from kommo_sync.sandbox.mailchimp.rules import subscriber_hash
from kommo_sync.state import run_lock
from tests.conftest import BACKENDS


def fake_contact(world, name="Fake", email="test@example.com"):
    """Mailchimp refuses this address permanently: it 'looks fake or invalid'."""
    return world.kommo.add_contact(name, email=email, consent=True)


def listed(world, *args):
    result = world.cli("rejections", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["rejections"]


def fix_the_cause(monkeypatch):
    """The stand-in for fixing what Mailchimp refused: no domain looks fake any more."""
    monkeypatch.setattr(rules, "FAKE_DOMAINS", frozenset())


def throttled(world, email):
    """Mailchimp's per-address signup throttle on this address, until the faults are cleared."""
    body = {
        "status": 400,
        "title": "Member In Compliance State",
        "detail": f"{email} has signed up to a lot of lists very recently; we're not allowing "
        "more signups for now",
    }
    path = rf"^/3\.0/lists/[^/]+/members/{subscriber_hash(email)}$"
    world.mailchimp.faults.add(Fault(method="PUT", path=path, status=400, body=body, times=0))


def transient_rejection(world, sales):
    """Ada is refused by the signup throttle (transient, lasting until the faults are cleared):
    the run exits 1."""
    world.kommo.add_contact("Bob", email="bob@stone.io", consent=True)
    world.run()
    world.clock.advance(60)
    ada = world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    throttled(world, "ada@analytical.io")
    assert world.cli("run").exit_code == 1
    [row] = listed(world)
    assert row["contact_id"] == ada and row["kind"] == "transient"
    world.clock.advance(3600)
    return ada


def test_a_permanent_rejection_is_listed_with_its_reason_and_exported_as_json_and_csv(world, sales):
    world.with_mailchimp()
    fake = fake_contact(world)
    first = world.run()
    [row] = listed(world)
    assert row["destination"] == "mailchimp" and row["contact_id"] == fake
    assert row["email"] == "test@example.com" and row["kind"] == "permanent"
    assert "looks fake or invalid" in row["reason"]
    assert row["run_id"] == first.run_id
    assert first.started_at <= row["first_seen"] <= first.finished_at
    assert row["acknowledged_at"] is None and row["retry_queued"] is False
    exported = list(csv.DictReader(io.StringIO(world.cli("rejections", "--csv").stdout)))
    assert [(r["contact_id"], r["email"], r["kind"]) for r in exported] == [
        (str(fake), "test@example.com", "permanent")
    ]
    table = world.cli("rejections")
    assert "test@example.com" in table.output and "permanent" in table.output


def test_retry_requeues_transient_ones_by_default_and_permanent_ones_only_when_asked(
    world, sales, monkeypatch
):
    world.with_mailchimp()
    fake_contact(world)
    world.run()
    fix_the_cause(monkeypatch)
    world.clock.advance(3600)
    assert "0 re-queued" in world.cli("retry").output
    world.run()
    assert world.mailchimp.member(world.list_id, "test@example.com") is None
    result = world.cli("retry", "--permanent")
    assert result.exit_code == 0 and "1 re-queued for the next run" in result.output
    [row] = listed(world)
    assert row["retry_queued"] is True
    world.clock.advance(3600)
    assert world.cli("run").exit_code == 0
    assert world.mailchimp.member(world.list_id, "test@example.com")["status"] == "subscribed"
    assert listed(world) == []


def test_retry_picks_by_contact_and_by_destination(world, sales, monkeypatch):
    world.with_mailchimp()
    first = fake_contact(world, "One", "one@example.com")
    fake_contact(world, "Two", "two@example.com")
    world.run()
    fix_the_cause(monkeypatch)
    assert "0 re-queued" in world.cli("retry", "--permanent", "--destination", "klaviyo").output
    result = world.cli("retry", "--permanent", "--contact", str(first))
    assert f"contact {first} (permanent)" in result.output and "1 re-queued" in result.output
    world.clock.advance(3600)
    world.run()
    assert world.mailchimp.member(world.list_id, "one@example.com")["status"] == "subscribed"
    assert world.mailchimp.member(world.list_id, "two@example.com") is None
    assert [r["email"] for r in listed(world)] == ["two@example.com"]


def test_a_dry_retry_says_who_would_be_requeued_and_changes_nothing(world, sales, monkeypatch):
    world.with_mailchimp()
    fake = fake_contact(world)
    world.run()
    before = listed(world)
    fix_the_cause(monkeypatch)
    result = world.cli("retry", "--permanent", "--dry-run")
    assert f"contact {fake} (permanent) would be re-queued" in result.output
    assert "nothing changed" in result.output
    assert listed(world) == before
    world.clock.advance(3600)
    world.run()
    assert world.mailchimp.member(world.list_id, "test@example.com") is None


@pytest.mark.parametrize("cleared", [True, False])
def test_a_cleared_rejection_is_not_retried_nor_counted_until_the_contact_changes(
    world, sales, cleared
):
    world.with_mailchimp()
    ada = transient_rejection(world, sales)
    if cleared:
        result = world.cli("rejections", "--clear", "--contact", str(ada))
        assert result.exit_code == 0 and "1 rejections acknowledged" in result.output
        [row] = listed(world)
        assert row["acknowledged_at"] == int(world.clock.now()) and row["kind"] == "transient"
        assert "acknowledged" in world.cli("rejections").output
    assert world.cli("run").exit_code == (0 if cleared else 1)
    assert world.mailchimp.member(world.list_id, "ada@analytical.io") is None
    world.mailchimp.faults.clear()  # the cause is gone
    world.clock.advance(3600)
    world.cli("run")
    member = world.mailchimp.member(world.list_id, "ada@analytical.io")
    assert (member is None) == cleared  # acknowledged: held while the data is the same
    world.kommo.update_contact(ada, last_name="Lovelace")
    world.clock.advance(3600)
    assert world.cli("run").exit_code == 0
    assert world.mailchimp.member(world.list_id, "ada@analytical.io")["status"] == "subscribed"
    assert listed(world) == []


def test_retry_brings_back_a_cleared_transient_rejection(world, sales):
    world.with_mailchimp()
    ada = transient_rejection(world, sales)
    world.cli("rejections", "--clear")
    world.mailchimp.faults.clear()
    result = world.cli("retry", "--destination", "mailchimp")
    assert f"contact {ada} (transient) re-queued" in result.output
    [row] = listed(world)
    assert row["acknowledged_at"] is None and row["retry_queued"] is True
    assert world.cli("run").exit_code == 0
    assert world.mailchimp.member(world.list_id, "ada@analytical.io")["status"] == "subscribed"


def test_retry_now_pushes_the_retried_people_at_once_and_nobody_else(world, sales, monkeypatch):
    world.with_mailchimp()
    fake_contact(world)
    world.run()
    fix_the_cause(monkeypatch)
    world.clock.advance(600)
    other = world.kommo.add_contact("Other", email="other@firm.io", consent=True)
    world.clock.advance(600)
    result = world.cli("retry", "--permanent", "--now", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "retry" and report["counts"]["mailchimp.create"] == 1
    assert world.mailchimp.member(world.list_id, "test@example.com")["status"] == "subscribed"
    assert world.mailchimp.member(world.list_id, "other@firm.io") is None  # the next run's
    assert listed(world) == []
    world.clock.advance(600)
    later = world.run()
    assert later.counts["mailchimp.create"] == 1  # the cursor did not move past Other
    assert [row.contact_id for row in later.people] == [other]
    assert world.mailchimp.member(world.list_id, "other@firm.io")["status"] == "subscribed"


def test_retry_now_with_nobody_to_retry_runs_nothing(world, sales):
    world.with_mailchimp()
    world.run()
    result = world.cli("retry", "--now")
    assert result.exit_code == 0 and "--now: nothing to run" in result.output
    runs = json.loads(world.cli("status", "--json").stdout)["runs"]
    assert [run["mode"] for run in runs] == ["run"]


def test_status_shows_acknowledged_rejections_apart_from_pending_ones(world, sales):
    world.with_mailchimp()
    fake_contact(world)
    world.run()
    assert "Acknowledged" not in world.cli("status").output
    world.cli("rejections", "--clear")
    status = world.cli("status")
    assert "Acknowledged rejections: 1" in status.output
    assert "No pending rejections." in status.output
    counts = json.loads(world.cli("status", "--json").stdout)["rejection_counts"]
    assert counts == {"acknowledged": 1}


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    "command", [("retry",), ("retry", "--permanent"), ("rejections", "--clear")]
)
def test_a_write_while_a_run_holds_the_lock_exits_3_and_changes_nothing(world, sales, command):
    world.with_mailchimp()
    fake_contact(world)
    world.run()
    before = listed(world)
    lock = run_lock(world.config())
    lock.acquire()
    try:
        result = world.cli(*command)
    finally:
        lock.release()
    assert result.exit_code == 3 and "another kommo-sync run" in result.output
    assert listed(world) == before
