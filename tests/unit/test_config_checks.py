"""Setup checks on every run, before any request: exit 2 naming the key, with a "did you mean"
where one is close; the state file is checked before it is chmod-ed or written; CLI habits."""

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from kommo_sync import __version__
from kommo_sync.cli import cli
from kommo_sync.state import SCHEMA_VERSION, State
from tests.conftest import ENV, assert_no_secret


def refused(world, *args, env=None):
    """Run the CLI; it must exit 2 with one config-error line and no request to any vendor."""
    result = world.cli(*(args or ("run",)), env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert (world.kommo.log, world.mailchimp.log, world.klaviyo.log) == ([], [], [])
    assert_no_secret(result.output)
    return result.stderr.strip()


# base URLs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "section, url, message",
    [
        (
            "kommo",
            "https://acme.kommo.com/api/v4",
            "kommo.base_url: give the account's address without /api/v4, like https://acme.kommo.com",
        ),
        (
            "kommo",
            "https://acme.kommo.com/leads",
            "kommo.base_url: give the account's address without a path, like https://acme.kommo.com",
        ),
        (
            "kommo",
            "http://acme.kommo.com",
            "kommo.base_url: must use https (the token would travel in clear); "
            "http is only for 127.0.0.1, ::1 and localhost",
        ),
        (
            "mailchimp",
            "https://us1.api.mailchimp.com",
            "mailchimp.base_url: must end in /3.0, like https://us1.api.mailchimp.com/3.0",
        ),
        (
            "mailchimp",
            "http://us1.api.mailchimp.com/3.0",
            "mailchimp.base_url: must use https (the key would travel in clear); "
            "http is only for 127.0.0.1, ::1 and localhost",
        ),
        (
            "klaviyo",
            "https://a.klaviyo.com/api",
            "klaviyo.base_url: give the host without a path, like https://a.klaviyo.com",
        ),
    ],
)
def test_a_base_url_of_the_wrong_shape_or_in_clear_is_refused_before_any_request(
    world, section, url, message
):
    world.with_mailchimp().with_klaviyo()
    world.raw[section]["base_url"] = url
    assert refused(world) == f"config error: {message}"


def test_loopback_hosts_may_use_http(world):
    world.with_mailchimp().with_klaviyo()
    for host in ("localhost", "[::1]", "127.0.0.1"):
        world.raw["kommo"]["base_url"] = f"http://{host}:9"
        assert world.config().kommo.base_url == f"http://{host}:9"


def test_a_mailchimp_key_whose_suffix_is_no_data_center_builds_no_url_and_is_not_echoed(world):
    world.with_mailchimp()
    del world.raw["mailchimp"]["base_url"]
    key = "0123456789abcdef-evil.example.com/x#"
    message = refused(world, env={"MAILCHIMP_API_KEY": key})
    assert message == (
        "config error: mailchimp.api_key: does not end in a data center suffix "
        "like -us6 (copy the whole key from Mailchimp's API keys page)"
    )
    assert "evil" not in message


def test_the_mailchimp_data_center_builds_the_official_host(world):
    world.with_mailchimp()
    del world.raw["mailchimp"]["base_url"]
    assert world.config().mailchimp.base_url == "https://us1.api.mailchimp.com/3.0"


# regions and currencies ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, message",
    [
        (
            "phone_region",
            "Germany",
            "klaviyo.phone_region: not an ISO 3166 region code; did you mean DE?",
        ),
        (
            "phone_region",
            "Deutshland",
            "klaviyo.phone_region: not an ISO 3166 region code; did you mean DE?",
        ),
        (
            "phone_region",
            "QQ",
            "klaviyo.phone_region: not an ISO 3166 region code (like DE, US, GB)",
        ),
        ("currency", "euro", "klaviyo.currency: not an ISO 4217 currency code; did you mean EUR?"),
        (
            "currency",
            "dollars",
            "klaviyo.currency: not an ISO 4217 currency code (like EUR, USD, GBP)",
        ),
    ],
)
def test_a_region_or_currency_that_is_not_a_code_is_refused_with_the_code_meant(
    world, key, value, message
):
    world.with_klaviyo(**{key: value})
    assert refused(world) == f"config error: {message}"


def test_region_and_currency_codes_are_read_in_any_case(world):
    world.with_klaviyo(phone_region="de", currency="usd")
    klaviyo = world.config().klaviyo
    assert (klaviyo.phone_region, klaviyo.currency) == ("DE", "USD")


# unknown keys and misspellings --------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda raw: raw["kommo"].update(tokn="x"), "kommo.tokn: unknown key; did you mean token?"),
        (lambda raw: raw.update(mailchimps={}), "mailchimps: unknown key; did you mean mailchimp?"),
        (
            lambda raw: raw["mailchimp"].update(without_consent="skp"),
            "mailchimp.without_consent: must be one of skip, transactional, pending, got 'skp'; "
            "did you mean skip?",
        ),
        (
            lambda raw: raw["klaviyo"].update(lists_by_stage={"wonn": "X"}),
            "klaviyo.lists_by_stage.wonn: not a stage (new, in_progress, won, lost); "
            "did you mean won?",
        ),
        (
            lambda raw: raw["klaviyo"].update(events={"wonn": "X"}),
            "klaviyo.events.wonn: unknown event (created, stage_changed, won, lost); "
            "did you mean won?",
        ),
    ],
)
def test_an_unknown_key_or_a_misspelt_value_is_refused_with_the_closest_name(
    world, change, message
):
    world.with_mailchimp().with_klaviyo()
    change(world.raw)
    assert refused(world) == f"config error: {message}"


def test_an_unknown_key_with_nothing_close_lists_the_keys_expected(world):
    world.raw["kommo"]["colour"] = "blue"
    assert refused(world) == (
        "config error: kommo.colour: unknown key (expected one of base_url, token, consent_field, "
        "lead_source_field, pipelines, requests_per_second, overlap_seconds, oauth, pacing_key, "
        "pacing_file)"
    )


def test_every_missing_environment_variable_is_reported_at_once(world):
    world.with_mailchimp().with_klaviyo()
    message = refused(world, env={"KOMMO_TOKEN": None, "KLAVIYO_API_KEY": None})
    assert message == (
        "config error: klaviyo.api_key, kommo.token: KLAVIYO_API_KEY, KOMMO_TOKEN are not set "
        "(in the environment, as *_FILE, or in an env file: --env-file or env_file:)"
    )


# the state file ----------------------------------------------------------------------------------
def foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    db.close()


def newer_state(path: Path) -> None:
    with State.open(path):
        pass
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: p.write_text("name,email\nAda,ada@firm.io\n"), "is not a SQLite database"),
        (foreign_sqlite, "is a SQLite database of another program (it has no kommo-sync tables)"),
        (
            newer_state,
            f"was written by a newer kommo-sync (schema {SCHEMA_VERSION + 1}; this release "
            f"knows {SCHEMA_VERSION}): upgrade kommo-sync",
        ),
    ],
)
@pytest.mark.parametrize("command", [("run",), ("run", "--dry-run"), ("status",)])
def test_a_state_file_that_is_not_ours_is_refused_and_left_untouched(world, make, problem, command):
    state = world.tmp / "state.db"
    make(state)
    os.chmod(state, 0o644)
    before = state.read_bytes()
    message = refused(world, *command)
    assert message == f"config error: state: {state} {problem}"
    assert (state.read_bytes(), state.stat().st_mode & 0o777) == (before, 0o644)


@pytest.mark.parametrize("command", [("run",), ("run", "--dry-run"), ("status",)])
def test_a_state_path_that_is_a_directory_is_refused_and_left_untouched(world, command):
    state = world.tmp / "state.db"
    state.mkdir(mode=0o755)
    message = refused(world, *command)
    assert (
        message
        == f"config error: state: {state} is a directory; give a file path like ./kommo-sync.db"
    )
    assert (list(state.iterdir()), state.stat().st_mode & 0o777) == ([], 0o755)


def test_a_state_path_under_a_file_is_refused(world):
    (world.tmp / "plain").write_text("")
    world.raw["state"] = str(world.tmp / "plain" / "state.db")
    message = refused(world)
    lock = world.tmp / "plain" / "state.db.lock"
    assert message == f"config error: state: cannot create {lock}: File exists"


def test_an_empty_state_file_is_a_new_state(world):
    (world.tmp / "state.db").write_bytes(b"")
    assert world.cli("run").exit_code == 0
    assert (world.tmp / "state.db").stat().st_mode & 0o777 == 0o600


# CLI habits --------------------------------------------------------------------------------------
def test_config_verbose_and_env_file_are_accepted_after_the_subcommand(world, tmp_path):
    world.write_config()
    env_file = tmp_path / "secrets.env"
    env_file.write_text(f"KOMMO_TOKEN={ENV['KOMMO_TOKEN']}\n")
    env_file.chmod(0o600)
    result = CliRunner().invoke(
        cli,
        ["run", "--config", str(world.config_path), "-v", "--env-file", str(env_file)],
        obj={"clock": world.clock},
        env={"KOMMO_TOKEN": None},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "DEBUG" in result.stderr


def test_version_prints_the_release():
    result = CliRunner().invoke(cli, ["--version"])
    assert (result.exit_code, result.output) == (0, f"kommo-sync {__version__}\n")


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ("backfill", "--since", "2030-01-01"),
            "Invalid value for --since: it is in the future: there is nothing to backfill yet",
        ),
        (("backfill", "--since", "last tuesday"), "not an ISO date or datetime: 'last tuesday'"),
        (
            ("backfill", "--since", "2025-06-01", "--until", "2025-05-01"),
            "--until must be after --since",
        ),
        (("demo", "--contacts", "-5"), "-5 is not in the range 1<=x<=100000"),
    ],
)
def test_bad_dates_and_counts_are_usage_errors(world, args, words):
    result = world.cli(*args)
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert "Traceback" not in result.output
