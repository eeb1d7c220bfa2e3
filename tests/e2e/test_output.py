"""Output for machines and cron: the compact report, --quiet, --details, --show-emails, the
heartbeat in every phase, --log-format json, and --json against its shipped, versioned schema."""

import json
import re
from collections import Counter
from importlib import resources

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from kommo_sync import cli_run as cli_module
from kommo_sync.report import SCHEMA_VERSION, result_to_json, run_report_schema
from kommo_sync.results import DETAIL_LIMIT, PersonRow, RunResult
from kommo_sync.sandbox.faults import Fault
from kommo_sync.sandbox.seed import mutate_fraction, seed_account
from kommo_sync.state import FileLock
from tests.conftest import assert_no_secret

PREFIX = re.compile(r"^2026-01-01T\d\d:\d\d:\d\dZ \[run (\d+)\] ")
FAKE_REASON = "looks fake or invalid, please enter a real email address."


def bodies(text):
    """The compact report's lines without their timestamp and run id (every line must have both)."""
    lines = text.splitlines()
    assert all(PREFIX.match(line) for line in lines), text
    return [PREFIX.sub("", line) for line in lines]


def validate(document):
    validator = Draft202012Validator(run_report_schema(), format_checker=FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []


def people(world, n, first=0):
    return [
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)
        for i in range(first, first + n)
    ]


def fake_and_ada(world):
    """A Mailchimp-only account: one address Mailchimp refuses as fake, one it takes."""
    world.with_mailchimp()
    fake = world.kommo.add_contact("Fake", email="test@example.com", consent=True)
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    return fake


# the compact report -------------------------------------------------------------------------------
def test_without_a_terminal_a_first_sync_of_300_contacts_is_a_compact_report_of_whole_short_lines(
    world,
):
    world.with_mailchimp().with_klaviyo()
    seed_account(world.kommo, 300)
    result = world.cli("run")
    assert result.exit_code == 1  # the seed holds three malformed emails
    assert len(result.stdout.encode()) < 2_000
    summary, mailchimp, klaviyo, *rejections = bodies(result.stdout)
    assert re.fullmatch(
        r"run finished in \d+ s, exit 1, window 1970-01-01T00:00:00Z/2026-01-01T00:00:00Z: "
        r"people=292 pushed=518 rejected=6 .*changed_contacts=300 .*pulled_contacts=300.*",
        summary,
    )
    assert mailchimp.startswith("mailchimp: ok, create=163 done=259 rejected.permanent=3")
    assert klaviyo.startswith("klaviyo: ok, create=262 done=259 rejected.permanent=3")
    assert len(rejections) == 6 and all(r.startswith("rejected: ") for r in rejections)
    assert sum(r.endswith(f"(permanent): [email] {FAKE_REASON}") for r in rejections) == 3
    assert sum(r.endswith("(permanent): Invalid email address") for r in rejections) == 3
    assert "@" not in result.stdout and "…" not in result.stdout and result.stderr == ""


def test_each_rejection_names_the_contact_id_and_the_email_only_with_show_emails(world, sales):
    fake = fake_and_ada(world)
    plain = world.cli("run")
    world.clock.advance(60)
    world.kommo.update_contact(fake, first_name="Faker")  # changed data: tried again
    shown = world.cli("run", "--show-emails")
    assert plain.exit_code == shown.exit_code == 1
    assert bodies(plain.stdout)[2:] == [
        f"rejected: mailchimp contact {fake} (permanent): Invalid Resource: [email] {FAKE_REASON}"
    ]
    assert bodies(shown.stdout)[2:] == [
        f"rejected: mailchimp contact {fake} test@example.com (permanent): "
        f"Invalid Resource: test@example.com {FAKE_REASON}"
    ]
    assert "ada@analytical.io" not in shown.stdout


def test_quiet_prints_nothing_on_success_and_only_the_problems_when_a_destination_is_set_aside(
    world, sales
):
    world.with_mailchimp().with_klaviyo()
    people(world, 3)
    quiet = world.cli("run", "--quiet", "--heartbeat", "0.01")
    assert (quiet.exit_code, quiet.output) == (0, "")
    world.clock.advance(60)
    people(world, 5, first=3)
    world.mailchimp.faults.add(Fault(method="*", path=r"^/3\.0/", status=503, times=0))
    failed = world.cli("run", "--quiet")
    assert failed.exit_code == 4
    summary, mailchimp, klaviyo = bodies(failed.stdout)
    assert summary.startswith("run finished in ") and ", exit 4, " in summary
    assert mailchimp.startswith(
        "mailchimp: set aside (failure), 5 contacts held back, queued for it: "
    )
    assert "503" in mailchimp and klaviyo.startswith("klaviyo: ok, ")
    assert "mailchimp set aside for this run" in failed.stderr  # the engine's warning, timestamped


def test_details_prints_the_tables_without_a_terminal_and_a_terminal_gets_them_anyway(
    world, sales, monkeypatch
):
    world.with_mailchimp()
    people(world, 2)
    details = world.cli("run", "--details")
    world.clock.advance(60)
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    monkeypatch.setattr(cli_module, "stdout_is_terminal", lambda: True)
    terminal = world.cli("run")
    for result in (details, terminal):
        assert result.exit_code == 0 and not PREFIX.match(result.stdout)
        assert "Changed contacts" in result.stdout and "Totals" in result.stdout
    assert "p1@firm.io" in details.stdout and "ada@analytical.io" in terminal.stdout


def test_a_dry_run_shows_its_plan_as_tables_even_without_a_terminal(world, sales):
    world.with_mailchimp()
    people(world, 2)
    result = world.cli("run", "--dry-run")
    assert result.exit_code == 0 and "Operations" in result.stdout and "p0@firm.io" in result.stdout


# heartbeat and JSON logs -------------------------------------------------------------------------
def test_json_logs_carry_run_id_and_phase_and_a_heartbeat_beats_on_the_clock_in_every_phase(world):
    world.with_mailchimp().with_klaviyo()
    seed_account(world.kommo, 300)
    world.run()
    world.clock.advance(600)
    mutate_fraction(world.kommo, 0.3, seed=5)
    for member in world.mailchimp.members(world.list_id)[:20]:
        world.mailchimp.unsubscribe(
            world.list_id, member["email_address"], reason="Too many emails"
        )
    world.clock.advance(60)
    result = world.cli("-v", "run", "--log-format", "json", "--heartbeat", "0.1")
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records and {(r["run_id"], r["level"]) for r in records} <= {(2, "debug"), (2, "info")}
    beats = [r for r in records if r["logger"] == "kommo_sync.progress"]
    assert {b["phase"] for b in beats} >= {"pull", "push", "events", "notes"}
    assert all(
        later["elapsed"] - earlier["elapsed"] >= 0.1
        for earlier, later in zip(beats, beats[1:], strict=False)
    )
    assert beats[-1]["counts"]["notes_written"] > 0 and "notes written" in beats[-1]["message"]
    phase_of = {
        r["message"].split(" -> ")[0]: r["phase"]
        for r in records
        if r["logger"] == "kommo_sync.http"
    }
    assert phase_of["Kommo GET /api/v4/events"] == "events"
    assert phase_of["Kommo POST /api/v4/contacts/notes"] == "notes"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in records)
    assert {r["account"] for r in records} == {world.tmp.name}  # the folder: no `account:`
    assert_no_secret(result.stderr)


def test_every_text_log_line_names_the_account(world, sales):
    world.with_mailchimp()
    world.raw["account"] = "acme"
    people(world, 2)
    result = world.cli("-v", "run", "--quiet")
    lines = result.stderr.splitlines()
    assert result.exit_code == 0 and len(lines) > 3
    assert all(
        re.match(r"^\S+ \S+ (DEBUG|INFO) \[acme(, run 1, \w+)?\] ", line) for line in lines
    ), lines


def test_a_failure_is_one_json_log_line_on_stderr_and_an_error_object_on_stdout(world, sales):
    world.raw["account"] = "acme"
    result = world.cli(
        "run", "--json", "--log-format", "json", env={"KOMMO_TOKEN": "revoked-token-9999"}
    )
    assert result.exit_code == 4
    [line] = [json.loads(line) for line in result.stderr.splitlines()]
    assert (
        line["level"] == "error"
        and line["account"] == "acme"
        and line["run_id"] == 1
        and "expired or was revoked" in line["message"]
    )
    body = json.loads(result.stdout)
    validate(body)
    assert body == {
        "schema_version": SCHEMA_VERSION,
        "account": "acme",
        "exit_code": 4,
        "error": {"exit_code": 4, "kind": "fatal", "message": line["message"]},
    }
    assert "revoked-token-9999" not in result.output


# --json and its schema -------------------------------------------------------------------------
def test_the_json_report_of_a_clean_run_follows_the_schema_with_every_known_count_and_iso_times(
    world, sales
):
    world.with_mailchimp()
    people(world, 2)
    code, body = world.cli_json("run", "--quiet")
    assert code == 0
    validate(body)
    assert (
        body["schema_version"] == SCHEMA_VERSION
        and body["exit_code"] == 0
        and body["error"] is None
    )
    assert body["window"] == {"from": "1970-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    assert (
        body["started_at"] == "2026-01-01T00:00:00Z" and body["finished_at"] >= body["started_at"]
    )
    headline = ("people", "pushed", "rejected", "notes_written", "pulled_events")
    assert {key: body["counts"][key] for key in headline} == {
        "people": 2,
        "pushed": 2,
        "rejected": 0,
        "notes_written": 0,
        "pulled_events": 0,
    }
    assert body["account"] == world.tmp.name  # the folder: no `account:`
    assert body["truncated"] == {} and body["destinations"] == {
        "mailchimp": {"status": "ok", "reason": ""}
    }


def test_the_json_report_of_a_run_with_rejections_follows_the_schema(world, sales):
    fake = fake_and_ada(world)
    code, body = world.cli_json("run")
    assert code == 1
    validate(body)
    assert body["rejections"] == [
        {
            "destination": "mailchimp",
            "contact_id": fake,
            "email": "test@example.com",
            "kind": "permanent",
            "reason": f"Invalid Resource: test@example.com {FAKE_REASON}",
        }
    ]
    assert body["counts"]["rejected"] == 1 and body["exit_code"] == 1


def test_the_json_report_of_a_destination_set_aside_follows_the_schema(world, sales):
    world.with_mailchimp().with_klaviyo()
    people(world, 4)
    world.mailchimp.faults.add(Fault(method="*", path=r"^/3\.0/", status=503, times=0))
    code, body = world.cli_json("run")
    assert code == 4
    validate(body)
    assert body["destinations"]["mailchimp"]["status"] == "set_aside"
    assert body["destinations"]["mailchimp"]["cause"] == "failure" and body["exit_code"] == 4


def failed_backfill(world, failure):
    """A backfill with --json that fails: a revoked token, a config without a key, a lock held."""
    if failure == "config":
        del world.raw["kommo"]["base_url"]
    if failure != "lock":
        return world.cli(
            "backfill",
            "--since",
            "2025-12-01",
            "--json",
            env={"KOMMO_TOKEN": "revoked-token-9999"} if failure == "token" else None,
        )
    lock = FileLock(world.tmp / "state.db.lock")
    lock.acquire()
    try:
        return world.cli("backfill", "--since", "2025-12-01", "--json")
    finally:
        lock.release()


@pytest.mark.parametrize(
    "failure, code, kind", [("token", 4, "fatal"), ("config", 2, "config"), ("lock", 3, "locked")]
)
def test_a_failed_run_prints_an_error_object_that_follows_the_schema(
    world, sales, failure, code, kind
):
    result = failed_backfill(world, failure)
    body = json.loads(result.stdout)
    validate(body)
    assert result.exit_code == body["exit_code"] == body["error"]["exit_code"] == code
    assert body["error"]["kind"] == kind and body["error"]["message"] in result.stderr
    assert_no_secret(result.output)


def test_a_listing_capped_at_the_detail_limit_says_so_with_its_total():
    result = RunResult(
        7,
        "run",
        False,
        (0, 1_767_225_600),
        Counter(people=DETAIL_LIMIT + 500),
        started_at=1_767_225_600,
        finished_at=1_767_225_660,
    )
    result.keep(
        "people",
        (
            PersonRow(i, f"p{i}@firm.io", "new", "New Lead", None, None)
            for i in range(DETAIL_LIMIT + 500)
        ),
    )
    body = result_to_json(result, exit_code=0)
    validate(body)
    assert len(body["people"]) == DETAIL_LIMIT
    assert body["truncated"] == {"people": {"shown": DETAIL_LIMIT, "total": DETAIL_LIMIT + 500}}
    assert body["duration_seconds"] == 60 and body["counts"]["rejected"] == 0


def test_the_schema_takes_an_account_label_and_refuses_what_config_would_refuse():
    result = RunResult(7, "run", False, (0, 60), account="acme-co", finished_at=60)
    body = result_to_json(result, exit_code=0)
    validate(body)
    assert body["account"] == "acme-co"
    validator = Draft202012Validator(run_report_schema(), format_checker=FormatChecker())
    assert not validator.is_valid({**body, "account": "acme co"})


def test_the_schema_ships_inside_the_package_and_is_a_valid_json_schema():
    text = resources.files("kommo_sync").joinpath("schema/run-report.schema.json").read_text()
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    assert schema == run_report_schema()
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
