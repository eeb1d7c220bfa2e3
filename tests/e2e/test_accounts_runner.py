"""Issue 16, `run --accounts`: three accounts, each a folder with its sync.yaml, env file, state
and sandboxes; one holds a revoked Kommo token. Each runs as a `kommo-sync run --json` process
of its own (on the wall clock); the healthy ones sync, the set exits 4, the table and the JSON
name each account."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker
from prometheus_client.parser import text_string_to_metric_families

from kommo_sync.cli import cli
from kommo_sync.clock import Clock
from kommo_sync.report import run_report_schema
from kommo_sync.state import FileLock
from tests.conftest import ENV, World
from tests.e2e.test_signals import ROOT, last_run, polls, wait_for

NAMES = ("acme", "beta", "gamma")
BAD = "beta"


def account(root: Path, name: str) -> World:
    """A Mailchimp account on the wall clock with two people; its secrets in its own env file."""
    (root / name).mkdir(parents=True)
    world = World(root / name, Clock())  # type: ignore[arg-type]
    world.kommo.rate_window = None
    world.with_mailchimp()
    world.raw["env_file"] = "env"
    secrets = {**ENV, "KOMMO_TOKEN": "revoked-token-9999"} if name == BAD else ENV
    env = root / name / "env"
    env.write_text("".join(f"{key}={value}\n" for key, value in secrets.items()))
    env.chmod(0o600)
    for i in range(2):
        world.kommo.add_contact(f"{name}{i}", email=f"p{i}@{name}.io", consent=True)
    world.write_config()
    return world


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[dict[str, World]]:
    worlds = {name: account(tmp_path / "accounts", name) for name in NAMES}
    yield worlds
    for world in worlds.values():
        world.close()


def run_set(root: Path, *args: str):
    return CliRunner().invoke(
        cli,
        ["run", "--accounts", str(root), "--parallel", "2", *args],
        obj={},
        env=dict.fromkeys(ENV),  # the secrets only in each account's env file
        catch_exceptions=False,
    )


def members(world: World, name: str) -> set[str]:
    return {
        email
        for email in (f"p{i}@{name}.io" for i in range(2))
        if (world.mailchimp.member(world.list_id, email) or {}).get("status") == "subscribed"
    }


def test_a_bad_token_fails_its_account_alone_and_the_set_exits_4_naming_each(accounts, tmp_path):
    result = run_set(tmp_path / "accounts")
    assert result.exit_code == 4, result.output
    for name in ("acme", "gamma"):
        assert members(accounts[name], name) == {f"p0@{name}.io", f"p1@{name}.io"}
    assert members(accounts[BAD], BAD) == set()
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines()]
    rows = {row[0]: row[1:6] for row in cells if row and row[0] in NAMES}
    assert rows == {
        "acme": ["0", "ok", "2", "2", "0"],
        "beta": ["4", "fatal", "-", "-", "-"],
        "gamma": ["0", "ok", "2", "2", "0"],
    }
    assert "Accounts (exit 4)" in result.stdout
    assert any(line.startswith("beta: run stopped: ") for line in result.stdout.splitlines())
    beta_lines = [line for line in result.stderr.splitlines() if "expired or was revoked" in line]
    assert beta_lines and all(line.startswith("[beta] ") for line in beta_lines)
    assert "revoked-token-9999" not in result.output


def test_with_json_one_schema_valid_document_per_account_then_a_summary(accounts, tmp_path):
    lock = FileLock(accounts["gamma"].tmp / "state.db.lock")
    lock.acquire()
    try:
        result = run_set(tmp_path / "accounts", "--json")
    finally:
        lock.release()
    *documents, last = [json.loads(line) for line in result.stdout.splitlines()]
    validator = Draft202012Validator(run_report_schema(), format_checker=FormatChecker())
    assert all(not list(validator.iter_errors(d)) for d in documents)
    assert [(d["account"], d["exit_code"]) for d in documents] == [
        ("acme", 0),
        ("beta", 4),
        ("gamma", 3),
    ]
    assert documents[0]["counts"]["pushed"] == 2 and documents[1]["error"]["kind"] == "fatal"
    summary = last["summary"]
    assert summary["exit_code"] == result.exit_code == 4
    assert [(a["account"], a["status"]) for a in summary["accounts"]] == [
        ("acme", "ok"),
        ("beta", "fatal"),
        ("gamma", "locked"),
    ]


def test_a_locked_account_counts_as_done_for_the_set(accounts, tmp_path):
    lock = FileLock(accounts["acme"].tmp / "state.db.lock")
    lock.acquire()
    try:
        result = run_set(
            tmp_path / "accounts" / "acme" / "sync.yaml",
            "--accounts",
            str(tmp_path / "accounts" / "gamma" / "sync.yaml"),
        )
    finally:
        lock.release()
    assert result.exit_code == 0, result.output
    assert "locked" in result.stdout and members(accounts["gamma"], "gamma") == {
        "p0@gamma.io",
        "p1@gamma.io",
    }


def test_sigterm_to_the_runner_stops_the_run_going_on_and_starts_no_other(tmp_path):
    root = tmp_path / "accounts"
    stuck, later = account(root, "a-stuck"), account(root, "b-later")
    try:
        stuck.raw["network"] = {"first_poll_seconds": 0.2, "timeout_seconds": 20}
        for i in range(12):  # members already: their updates go through a /batches job
            stuck.kommo.add_contact(f"P{i}", email=f"m{i}@firm.io", consent=True)
            stuck.mailchimp.add_member(stuck.list_id, f"m{i}@firm.io")
        stuck.write_config()
        stuck.mailchimp.batches_never_finish = True
        command = [sys.executable, "-m", "kommo_sync.cli", "run", "--accounts", str(root)]
        proc = subprocess.Popen(
            [*command, "--parallel", "1", "--json"],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k not in ENV},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(polls(stuck.mailchimp), proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 143, err
        *documents, last = [json.loads(line) for line in out.splitlines()]
        assert [(d["account"], d["exit_code"]) for d in documents] == [
            ("a-stuck", 143),
            ("b-later", 143),
        ]
        assert documents[0]["error"]["kind"] == "interrupted"
        assert [a["status"] for a in last["summary"]["accounts"]] == ["interrupted", "not started"]
        assert last_run(stuck)["status"] == "interrupted"  # the run ended at its safe point
        assert later.kommo.requests("GET") == []
    finally:
        stuck.close()
        later.close()


def test_a_path_without_accounts_is_a_config_error_naming_the_option(tmp_path):
    result = run_set(tmp_path / "nowhere", "--json")
    assert result.exit_code == 2
    assert result.stderr.startswith("config error: --accounts: ")
    assert json.loads(result.stdout)["error"]["kind"] == "config"


def test_metrics_file_gives_each_account_a_file_of_its_own_labelled_by_its_account(
    accounts, tmp_path
):
    target = tmp_path / "textfile" / "kommo_sync.prom"
    target.parent.mkdir()
    assert run_set(tmp_path / "accounts", "--metrics-file", str(target)).exit_code == 4
    assert sorted(p.name for p in target.parent.iterdir()) == [
        f"kommo_sync-{name}.prom" for name in NAMES
    ]
    for name in NAMES:
        text = (target.parent / f"kommo_sync-{name}.prom").read_text()
        codes = {
            sample.labels["account"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "kommo_sync_last_exit_code"
        }
        assert codes == {name: 4 if name == BAD else 0}
