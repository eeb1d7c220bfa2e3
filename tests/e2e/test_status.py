"""Issue 11, status: each run's row keeps its status, exit code and error; `status` shows them,
takes `--limit`, shows a `running` row whose lock is free as interrupted, and changes nothing.
The lock file is private and names its holder to a run that finds it held."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from kommo_sync.state import FileLock, open_state, run_lock
from tests.conftest import BACKENDS, World, assert_no_secret

WRONG_MAILCHIMP_KEY = "ffffffffffffffffffffffffffffffff-us1"


def status_runs(world: World, *args: str) -> list[dict[str, Any]]:
    result = world.cli("status", "--json", *args)
    assert result.exit_code == 0, result.output
    assert_no_secret(result.output)
    return json.loads(result.stdout)["runs"]


def state_path(world: World) -> Path:
    return Path(world.raw["state"])


def lock_of(world: World) -> FileLock:
    return FileLock.beside(state_path(world))


def lock_left(world: World) -> bool:
    """Whether anything of the run lock is there: its file, or its holder table."""
    if world.config().state_url is None:
        return lock_of(world).path.exists()
    with open_state(world.config(), dry_run=True) as state:
        found = state.db.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename = 'kommo_sync_lock'"
        )
        return found.fetchone() is not None


def seed_runs(world: World, count: int, status: str = "done") -> None:
    """`count` run rows written straight into the state, a minute apart."""
    with open_state(world.config()) as state:
        for n in range(count):
            run_id = state.start_run("run", int(world.clock.now()) + 60 * n)
            if status != "running":
                state.finish_run(run_id, status, int(world.clock.now()) + 60 * n + 5, {}, 0, None)


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_each_run_row_keeps_its_status_exit_code_and_error_and_status_shows_them(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    assert world.cli("run").exit_code == 0
    world.clock.advance(900)
    assert world.cli("run", env={"KOMMO_TOKEN": "revoked-token-9999"}).exit_code == 4
    world.clock.advance(900)
    assert world.cli("run", env={"MAILCHIMP_API_KEY": WRONG_MAILCHIMP_KEY}).exit_code == 4
    runs = status_runs(world)
    assert [(r["id"], r["status"], r["exit_code"]) for r in runs] == [
        (3, "destination_failed", 4),
        (2, "failed", 4),
        (1, "done", 0),
    ]
    assert runs[0]["error"].startswith("mailchimp: Mailchimp refused GET")
    assert "mailchimp.api_key" in runs[0]["error"]
    assert "Kommo" in runs[1]["error"] and "expired or was revoked" in runs[1]["error"]
    assert runs[2]["error"] is None
    text = world.cli("status").stdout
    assert "destination_failed" in text and "expired or was revoked" in text
    assert WRONG_MAILCHIMP_KEY not in text + json.dumps(runs)


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_status_shows_a_running_row_with_a_free_lock_as_interrupted_and_a_live_one_with_its_holder(
    world,
):
    seed_runs(world, 1, status="running")  # a run killed before it could record its end
    assert status_runs(world)[0] | {"started_at": 0} == {
        "id": 1,
        "mode": "run",
        "started_at": 0,
        "finished_at": None,
        "status": "interrupted",
        "exit_code": None,
        "error": "ended without recording its end (killed, or stopped at once)",
        "counts": {},
    }
    assert not lock_left(world)  # status created nothing
    lock = run_lock(world.config())
    lock.acquire(world.clock.now())
    try:
        seed_runs(world, 1, status="running")  # the live run, holding the lock
        live, dead = status_runs(world)
    finally:
        lock.release()
    assert (live["status"], live["holder"]) == (
        "running",
        {"pid": os.getpid(), "host": socket.gethostname(), "started_at": int(world.clock.now())},
    )
    assert (dead["id"], dead["status"]) == (1, "interrupted")


def test_status_shows_the_last_ten_runs_newest_first_or_as_many_as_limit_says(world):
    seed_runs(world, 12)
    assert [r["id"] for r in status_runs(world)] == list(range(12, 2, -1))
    assert [r["id"] for r in status_runs(world, "--limit", "3")] == [12, 11, 10]
    refused = world.cli("status", "--limit", "0")
    assert refused.exit_code == 2 and "--limit" in refused.output


def test_the_lock_file_is_private_and_a_run_finding_it_held_names_its_holder(world, sales):
    path = lock_of(world).path
    path.write_text("")
    path.chmod(0o644)  # left by an earlier release
    lock = lock_of(world)
    lock.acquire(world.clock.now())
    try:
        result = world.cli("run")
    finally:
        lock.release()
    assert result.exit_code == 3
    assert result.output.strip().splitlines()[-1] == (
        f"another kommo-sync run holds {path} (pid {os.getpid()} on {socket.gethostname()}, since "
        "2026-01-01T00:00:00+00:00); try again when it ends"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert world.cli("run").exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == ""
