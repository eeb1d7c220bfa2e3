"""Issue 16, the Python API: `kommo_sync.sync()` runs one account against the sandboxes, returns
the `--json` report (schema-valid, with its account), raises the documented error kinds, and
leaves the process as it found it: signal handlers, root logging, gc thresholds, cwd."""

from __future__ import annotations

import gc
import logging
import os
import signal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

import kommo_sync
from kommo_sync.clock import FakeClock
from kommo_sync.report import run_report_schema
from kommo_sync.state import FileLock
from tests.conftest import ENV, World, assert_no_secret


def validate(document: dict) -> None:
    validator = Draft202012Validator(run_report_schema(), format_checker=FormatChecker())
    assert [e.message for e in validator.iter_errors(document)] == []


def people(world: World, n: int) -> None:
    for i in range(n):
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)


def test_a_run_from_a_path_returns_the_json_report_and_the_members_land(world, sales, env):
    world.with_mailchimp()
    world.raw["account"] = "acme"
    people(world, 3)
    report = kommo_sync.sync(str(world.write_config()), clock=world.clock)
    validate(report.as_json())
    assert (report.exit_code, report.account) == (0, "acme")
    assert report.data["account"] == "acme" and report.data["mode"] == "run"
    assert report.counts["pushed"] == 3 and report.counts["people"] == 3
    assert {world.mailchimp.member(world.list_id, f"p{i}@firm.io")["status"] for i in range(3)} == {
        "subscribed"
    }
    assert_no_secret(str(report.data))


def test_a_loaded_config_and_a_dry_run_backfill_change_nothing(world, sales):
    world.with_mailchimp()
    people(world, 2)
    report = kommo_sync.sync(
        world.config(), mode="backfill", since="2025-12-01", dry_run=True, clock=world.clock
    )
    validate(report.as_json())
    assert report.data["mode"] == "backfill" and report.data["dry_run"] is True
    assert report.counts["people"] == 2 and len(report.data["operations"]) == 2
    assert world.mailchimp.member(world.list_id, "p0@firm.io") is None


def test_rejections_are_in_the_report_and_its_exit_code_not_raised(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Fake", email="test@example.com", consent=True)
    report = kommo_sync.sync(world.config(), clock=world.clock)
    assert report.exit_code == 1 and report.data["rejections"][0]["kind"] == "permanent"


def test_a_bad_config_raises_config_error_naming_the_key(world, env):
    world.raw["kommo"]["requests_per_second"] = "fast"
    with pytest.raises(kommo_sync.ConfigError) as raised:
        kommo_sync.sync(world.write_config(), clock=world.clock)
    assert raised.value.key == "kommo.requests_per_second"
    assert kommo_sync.exit_code_of(raised.value) == 2


def test_a_missing_config_file_and_a_wrong_argument_raise_config_error(world, tmp_path):
    with pytest.raises(kommo_sync.ConfigError) as missing:
        kommo_sync.sync(tmp_path / "absent.yaml")
    assert missing.value.key == "--config"
    with pytest.raises(kommo_sync.ConfigError) as until:
        kommo_sync.sync(world.config(), "backfill", since="2025-12-02", until="2025-12-01")
    assert until.value.key == "until"
    with pytest.raises(kommo_sync.ConfigError) as mode:
        kommo_sync.sync(world.config(), "everything")  # type: ignore[arg-type]
    assert mode.value.key == "mode"


def test_a_held_lock_raises_locked_error(world, sales):
    world.with_mailchimp()
    lock = FileLock(world.tmp / "state.db.lock")
    lock.acquire()
    try:
        with pytest.raises(kommo_sync.LockedError) as raised:
            kommo_sync.sync(world.config(), clock=world.clock)
    finally:
        lock.release()
    assert kommo_sync.exit_code_of(raised.value) == 3


def test_a_bad_token_raises_fatal_error(world, sales):
    world.with_mailchimp()
    config = world.config()
    world.kommo.token = "rotated-elsewhere"
    with pytest.raises(kommo_sync.FatalError) as raised:
        kommo_sync.sync(config, clock=world.clock)
    assert kommo_sync.exit_code_of(raised.value) == 4


def test_a_requested_stop_ends_the_run_at_a_safe_point_as_interrupted(world, sales):
    world.with_mailchimp()
    people(world, 2)
    clock = FakeClock()
    clock.stop.request(signal.SIGTERM)
    with pytest.raises(kommo_sync.Interrupted) as raised:
        kommo_sync.sync(world.config(), clock=clock)
    assert raised.value.exit_code == 143
    assert world.mailchimp.member(world.list_id, "p0@firm.io") is None
    assert not FileLock(world.tmp / "state.db.lock").holder()


def test_stop_and_clock_together_are_refused(world):
    with pytest.raises(kommo_sync.ConfigError) as raised:
        kommo_sync.sync(world.config(), stop=kommo_sync.StopFlag(), clock=world.clock)
    assert raised.value.key == "stop"


def test_a_call_leaves_signal_handlers_root_logging_gc_and_cwd_as_they_were(
    world, sales, tmp_path, monkeypatch
):
    world.with_mailchimp()
    people(world, 2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    thresholds = gc.get_threshold()
    seen: list[tuple[int, ...]] = []
    engine_run = kommo_sync.api.build_engine

    def spying(*args, **kwargs):  # what the process looks like while the run is on
        seen.append(gc.get_threshold())
        seen.append(tuple(id(signal.getsignal(s)) for s in signals))
        return engine_run(*args, **kwargs)

    monkeypatch.setattr(kommo_sync.api, "build_engine", spying)
    report = kommo_sync.sync(world.config(), clock=world.clock)
    assert report.exit_code == 0
    assert seen == [thresholds, tuple(id(h) for h in signals.values())]
    assert {sig: signal.getsignal(sig) for sig in signals} == signals
    assert (list(root.handlers), root.level, gc.get_threshold()) == (handlers, level, thresholds)
    assert Path(os.getcwd()) == elsewhere
