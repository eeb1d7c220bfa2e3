"""Issue 16, --metrics-file: Prometheus text after each run (a failed one too), parsed back with
prometheus_client and checked against the run's own report and the sandboxes' request logs."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kommo_sync import metrics
from kommo_sync.report import iso
from kommo_sync.state import FileLock
from tests.conftest import BOTH_BACKENDS

REVOKED = {"KOMMO_TOKEN": "revoked-token-9999"}


def samples(path):
    """{(name, labels without account): value}, every sample labelled with the account."""
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("account") == "acme"
            found[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return found


@pytest.fixture
def prom(world):
    world.raw["account"] = "acme"
    return world.tmp / "kommo_sync.prom"


def test_the_file_matches_the_runs_report_and_the_requests_each_vendor_saw(world, sales, prom):
    world.with_mailchimp()
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    world.kommo.add_contact("Fake", email="test@example.com", consent=True)
    world.kommo.fail_next(1, 429)
    code, body = world.cli_json("run", "--metrics-file", str(prom))
    assert code == 1
    got = samples(prom)
    assert got[("kommo_sync_runs_total", (("status", "done_with_rejections"),))] == 1
    assert got[("kommo_sync_contacts_pulled", ())] == body["counts"]["pulled_contacts"] == 2
    assert got[("kommo_sync_contacts_changed", ())] == body["counts"]["changed_contacts"]
    assert got[("kommo_sync_contacts_pushed", ())] == body["counts"]["pushed"] == 1
    assert got[("kommo_sync_rejections", (("kind", "permanent"),))] == 1
    assert got[("kommo_sync_rejections", (("kind", "transient"),))] == 0
    assert got[("kommo_sync_requests_total", (("vendor", "kommo"),))] == len(world.kommo.log)
    assert got[("kommo_sync_requests_total", (("vendor", "mailchimp"),))] == len(
        world.mailchimp.log
    )
    assert got[("kommo_sync_429_total", (("vendor", "kommo"),))] == 1
    assert got[("kommo_sync_429_total", (("vendor", "mailchimp"),))] == 0
    assert iso(got[("kommo_sync_last_success_timestamp_seconds", ())]) == body["finished_at"]
    assert got[("kommo_sync_last_exit_code", ())] == 1
    assert ("kommo_sync_run_duration_seconds", ()) in got


@BOTH_BACKENDS
def test_run_totals_come_from_the_state_and_request_totals_add_up_across_runs(world, sales, prom):
    world.kommo.add_contact("Ada", email="ada@analytical.io")
    assert world.cli("run", "--metrics-file", str(prom)).exit_code == 0
    world.clock.advance(3600)
    assert world.cli("run", "--metrics-file", str(prom)).exit_code == 0
    world.clock.advance(3600)
    assert (
        world.cli("backfill", "--since", "2025-12-01", "--metrics-file", str(prom)).exit_code == 0
    )
    got = samples(prom)
    assert got[("kommo_sync_runs_total", (("status", "done"),))] == 3
    assert got[("kommo_sync_requests_total", (("vendor", "kommo"),))] == len(world.kommo.log)


@BOTH_BACKENDS
def test_a_failed_run_writes_its_exit_code_and_keeps_the_last_success(world, sales, prom):
    assert world.cli("run", "--metrics-file", str(prom)).exit_code == 0
    success = samples(prom)[("kommo_sync_last_success_timestamp_seconds", ())]
    world.clock.advance(600)
    assert world.cli("run", "--metrics-file", str(prom), env=REVOKED).exit_code == 4
    got = samples(prom)
    assert got[("kommo_sync_last_exit_code", ())] == 4
    assert got[("kommo_sync_last_success_timestamp_seconds", ())] == success
    assert got[("kommo_sync_runs_total", (("status", "failed"),))] == 1
    assert ("kommo_sync_contacts_pulled", ()) not in got  # it ended before counting
    assert got[("kommo_sync_requests_total", (("vendor", "kommo"),))] == len(world.kommo.log)


def test_a_held_lock_leaves_the_file_to_the_run_holding_it(world, sales, prom):
    lock = FileLock(world.tmp / "state.db.lock")
    lock.acquire()
    try:
        assert world.cli("run", "--metrics-file", str(prom)).exit_code == 3
    finally:
        lock.release()
    assert not prom.exists()


def test_an_unwritable_metrics_file_is_a_warning_and_the_run_succeeds(world, sales):
    result = world.cli("run", "--metrics-file", str(world.tmp / "missing" / "x.prom"))
    assert (
        result.exit_code == 0 and "metrics file" in result.output and "not written" in result.output
    )


def test_a_write_that_fails_halfway_leaves_the_old_file_whole_and_no_temporary(
    tmp_path, monkeypatch
):
    path = tmp_path / "kommo_sync.prom"
    path.write_text("old\n")

    def broken_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_disk)
    with pytest.raises(OSError):
        metrics.write_atomically(path, "new\n" * 1000)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["kommo_sync.prom"]


def test_a_written_file_is_readable_by_the_collector_and_replaces_the_old_one(tmp_path):
    path = tmp_path / "kommo_sync.prom"
    path.write_text("old\n")
    metrics.write_atomically(path, "new\n")
    assert path.read_text() == "new\n" and path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["kommo_sync.prom"]
