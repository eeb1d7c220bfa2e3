"""Issue 16, `status --check [--max-age AGE]`: one line and exit 0 while the account is healthy,
exit 5 when the last run failed or the last success (exit 0 or 1) is older than AGE."""

from __future__ import annotations

import pytest

from kommo_sync.exits import EXIT_STALE
from kommo_sync.freshness import parse_age
from kommo_sync.state import FileLock, State
from tests.conftest import World
from tests.e2e.test_status import state_path


def record_run(world: World, exit_code: int | None, status: str = "done") -> None:
    """A run that started now and ended five seconds later with `exit_code` (None: still
    running)."""
    started = int(world.clock.now())
    with State.open(state_path(world)) as state:
        run_id = state.start_run("run", started)
        if exit_code is not None:
            state.finish_run(run_id, status, started + 5, {}, exit_code, None)


def check(world: World, *args: str) -> tuple[int, str, str]:
    result = world.cli("status", "--check", *args)
    return result.exit_code, result.stdout, result.stderr


def test_without_max_age_the_check_fails_only_when_the_last_run_failed(world):
    record_run(world, 4, "failed")
    world.clock.advance(900)
    record_run(world, 1)
    code, out, err = check(world)
    assert (code, err) == (0, "")
    assert out.startswith("last run 2 ended 2026-01-01T00:15:05+00:00 (0s ago), done, exit 1")
    world.clock.advance(900)
    record_run(world, 4, "failed")
    code, out, err = check(world)
    assert (code, out) == (EXIT_STALE, "")
    assert err == "last run 3 ended 2026-01-01T00:30:05+00:00 (0s ago), failed, exit 4\n"


def test_with_max_age_the_last_success_must_be_recent_enough(world):
    record_run(world, 0)
    world.clock.advance(3600)
    record_run(world, 4, "failed")  # a failure after it does not matter, only the success's age
    code, out, _ = check(world, "--max-age", "2h")
    assert code == 0
    assert out == (
        "last success 1 ended 2026-01-01T00:00:05+00:00 (59m ago), done, exit 0, within 2h\n"
    )
    world.clock.advance(3600 + 60)
    code, out, err = check(world, "--max-age", "120m")
    assert (code, out) == (EXIT_STALE, "")
    assert err == (
        "last success 1 ended 2026-01-01T00:00:05+00:00 (2h ago), done, exit 0, older than 2h\n"
    )


def test_max_age_alone_implies_the_check_and_never_succeeding_fails(world):
    record_run(world, 4, "failed")
    record_run(world, None)  # a run killed before it recorded its end: not a success
    result = world.cli("status", "--max-age", "1d")
    assert result.exit_code == EXIT_STALE
    assert result.stderr == "last success: never (in the last 2 runs)\n"


def test_no_run_at_all_fails_the_check(world):
    code, _, err = check(world)
    assert (code, err) == (EXIT_STALE, "no run has finished yet\n")


def test_a_run_in_progress_is_skipped_for_the_one_before_it(world):
    record_run(world, 0)
    world.clock.advance(60)
    lock = FileLock.beside(state_path(world))
    lock.acquire(world.clock.now())
    try:
        record_run(world, None)
        code, out, _ = check(world, "--max-age", "90m")
    finally:
        lock.release()
    assert code == 0 and out.startswith("last success 1 ended")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("2h", 7200), ("1d", 86400), ("3600s", 3600)]
)
def test_max_age_takes_seconds_minutes_hours_or_days(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["2", "0h", "-1h", "2 hours", "1w", ""])
def test_a_bad_max_age_is_a_usage_error_naming_the_option(world, text):
    result = world.cli("status", "--check", "--max-age", text)
    assert result.exit_code == 2
    assert "'--max-age'" in result.stderr and "like 2h" in result.stderr
