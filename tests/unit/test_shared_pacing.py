"""Kommo's pace shared across processes: slot rows in a SQLite file or a Postgres table, moments
converted to each caller's monotonic scale, a failing store giving way to local pacing."""

from __future__ import annotations

import logging
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from kommo_sync.clock import Clock, FakeClock
from kommo_sync.config import parse_config
from kommo_sync.errors import ConfigError, Interrupted
from kommo_sync.kommo import kommo_schedule
from kommo_sync.pacing import CLAIM_SLACK, LocalSchedule, Pacer, Slots
from kommo_sync.shared_pacing import (
    FileStore,
    PostgresStore,
    SharedSchedule,
    SlotStore,
    Step,
    schedule_for,
)

BASE = {"kommo": {"base_url": "https://acme.kommo.com", "token": "t"}}


class StillClock(Clock):
    """Real-time semantics (not simulated) with readings a test sets: wall and monotonic apart,
    as two processes' monotonic clocks are."""

    def __init__(self, wall: float, mono: float):
        self.wall, self.mono = wall, mono

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


class Recording:
    """A store that notes every real start it records (a claim that moved `last_start`)."""

    def __init__(self, store: SlotStore, starts: list[float]):
        self.store, self.starts, self.where = store, starts, store.where

    def update(self, key: str, step: Step[Any]) -> tuple[Any, float]:
        def noted(slots: Slots, now: float) -> tuple[Slots, Any]:
            after, result = step(slots, now)
            if after.last_start != slots.last_start:
                self.starts.append(after.last_start)
            return after, result

        return self.store.update(key, noted)


def starts_of_two_threads(stores: list[SlotStore], interval: float, each: int) -> list[float]:
    """Two pacers on two schedules over one shared row, each starting `each` requests."""
    starts: list[float] = []
    clock = Clock()

    def go(store: SlotStore) -> None:
        pacer = Pacer(1 / interval, clock, SharedSchedule(Recording(store, starts), "k", clock))
        for _ in range(each):
            pacer.wait_turn()

    threads = [threading.Thread(target=go, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(starts)


def test_two_schedules_on_one_file_never_start_closer_than_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "pacing.db"
    stores: list[SlotStore] = [FileStore(path, Clock()), FileStore(path, Clock())]
    starts = starts_of_two_threads(stores, interval=0.01, each=15)
    assert len(starts) == 30
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.01 - CLAIM_SLACK


def test_a_hold_is_seen_by_the_other_process_on_its_own_monotonic_scale(tmp_path: Path) -> None:
    path = tmp_path / "pacing.db"
    one = SharedSchedule(FileStore(path, a := StillClock(1000.0, 10.0)), "k", a)
    other = SharedSchedule(FileStore(path, b := StillClock(1000.0, 500.0)), "k", b)
    one.hold(5.0)
    assert other.claim(0.1) == pytest.approx(505.0)
    assert one.claim(0.1) == pytest.approx(15.0)


def test_bookings_follow_each_other_across_schedules_in_wall_time(tmp_path: Path) -> None:
    path = tmp_path / "pacing.db"
    one = SharedSchedule(FileStore(path, a := StillClock(1000.0, 10.0)), "k", a)
    other = SharedSchedule(FileStore(path, b := StillClock(1000.0, 500.0)), "k", b)
    assert one.take(0.5) == pytest.approx(10.0)
    assert other.take(0.5) == pytest.approx(500.5)
    apart = SharedSchedule(FileStore(path, b), "another key", b)
    assert apart.take(0.5) == pytest.approx(500.0)


def test_the_file_is_made_private_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "run" / "kommo-sync" / "pacing.db"
    SharedSchedule(FileStore(path, Clock()), "k", Clock()).take(0.1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_unusable_file_paces_locally_with_one_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    path = blocker / "pacing.db"
    clock = StillClock(1000.0, 10.0)
    schedule = SharedSchedule(FileStore(path, clock), "k", clock)
    with caplog.at_level(logging.WARNING):
        assert schedule.take(0.5) == 10.0
        assert schedule.take(0.5) == 10.5
        schedule.hold(1.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0]
    assert isinstance(schedule.fallback, LocalSchedule)


class Stopping:
    where = "a store a stop reaches"

    def update(self, key: str, step: Step[Any]) -> tuple[Any, float]:
        raise Interrupted(15)


def test_a_stop_asked_for_goes_through_the_store_rather_than_pacing_alone() -> None:
    schedule = SharedSchedule(Stopping(), "k", Clock())
    with pytest.raises(Interrupted):
        schedule.take(0.5)
    assert schedule.fallback is None


def test_simulated_time_keeps_the_process_schedule(tmp_path: Path) -> None:
    simulated = schedule_for("k", postgres_url=None, file=tmp_path / "p.db", clock=FakeClock())
    assert isinstance(simulated, LocalSchedule)
    real = schedule_for("k", postgres_url=None, file=tmp_path / "p.db", clock=Clock())
    assert isinstance(real, SharedSchedule) and isinstance(real.store, FileStore)


def test_the_default_file_is_per_user_under_the_runtime_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    schedule = schedule_for("k", postgres_url=None, file=None, clock=Clock())
    assert isinstance(schedule, SharedSchedule) and isinstance(schedule.store, FileStore)
    assert schedule.store.path == tmp_path / "kommo-sync" / "pacing.db"


def test_postgres_schedules_never_start_closer_than_the_interval(postgres_url: str) -> None:
    stores: list[SlotStore] = [PostgresStore(postgres_url), PostgresStore(postgres_url)]
    starts = starts_of_two_threads(stores, interval=0.02, each=10)
    assert len(starts) == 20
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.02 - CLAIM_SLACK


def test_a_postgres_hold_is_seen_by_another_connection_on_the_database_clock(
    postgres_url: str,
) -> None:
    clock = Clock()
    one = SharedSchedule(PostgresStore(postgres_url), "held", clock)
    other = SharedSchedule(PostgresStore(postgres_url), "held", clock)
    one.hold(30.0)
    before = clock.monotonic()
    moment = other.claim(0.1)
    assert moment is not None
    assert before + 29.0 < moment <= clock.monotonic() + 30.0
    assert other.fallback is None


def test_an_unreachable_database_paces_locally_naming_it_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "postgresql://sync:hunter2@127.0.0.1:1/kommo"
    schedule = SharedSchedule(PostgresStore(url), "k", clock := StillClock(1000.0, 10.0))
    with caplog.at_level(logging.WARNING):
        assert schedule.take(0.5) == 10.0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "postgresql://sync@127.0.0.1:1/kommo" in warning
    assert "hunter2" not in warning
    assert clock.mono == 10.0


def kommo(tmp_path: Path, **kommo: Any) -> Any:
    raw = {**BASE, "account": "acme-co", "kommo": {**BASE["kommo"], **kommo}}
    return parse_config(raw, {}, base_dir=tmp_path).kommo


def test_the_pacing_key_defaults_to_this_host(tmp_path: Path) -> None:
    assert kommo(tmp_path).pacing_key == f"host:{socket.gethostname()}"
    assert kommo(tmp_path).pacing_file is None


def test_the_pacing_key_can_be_the_account_or_a_group(tmp_path: Path) -> None:
    assert kommo(tmp_path, pacing_key="account").pacing_key == "account:acme-co"
    assert kommo(tmp_path, pacing_key="eu-clients").pacing_key == "group:eu-clients"


def test_a_bad_pacing_key_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        kommo(tmp_path, pacing_key="two words")
    assert caught.value.key == "kommo.pacing_key"


def test_the_pacing_file_is_resolved_beside_the_config(tmp_path: Path) -> None:
    assert kommo(tmp_path, pacing_file="run/pacing.db").pacing_file == tmp_path / "run/pacing.db"


def test_a_postgres_state_keeps_the_pace_in_its_database_shared_by_accounts(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two accounts, each with its schema in one database: their schedules book in one table
    (kommo_sync_shared), so the second's start waits for the first's."""
    clock = Clock()
    configs = [
        parse_config(
            {**BASE, "account": name, "state": f"{postgres_url}&schema=pace_{name}"},
            {},
            base_dir=tmp_path,
        ).kommo
        for name in ("acme", "beta")
    ]
    assert all(c.pacing_url and "schema=" not in c.pacing_url for c in configs)
    one, other = (kommo_schedule(c, clock) for c in configs)
    assert isinstance(one, SharedSchedule) and isinstance(one.store, PostgresStore)
    first = one.take(5.0)
    assert other.take(5.0) >= first + 5.0 - CLAIM_SLACK
    assert one.fallback is None and other.fallback is None
