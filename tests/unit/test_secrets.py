"""Secrets for cron and containers: ${VAR} from the environment, then VAR_FILE, then an env file;
masked in every form they travel in; a warning when one is kept where others can read it."""

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kommo_sync.sandbox.faults import Fault
from tests.conftest import ENV, KLAVIYO_KEY, KOMMO_TOKEN, MAILCHIMP_KEY, assert_no_secret

UNSET = {name: None for name in ENV}
BARE_KEY = MAILCHIMP_KEY.rsplit("-", 1)[0]
BASIC_AUTH = base64.b64encode(f"kommo-sync:{MAILCHIMP_KEY}".encode()).decode()


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def env_file_text() -> str:
    return (
        "# kommo-sync secrets, read by cron\n"
        "\n"
        f"KOMMO_TOKEN={KOMMO_TOKEN}\n"
        f'export MAILCHIMP_API_KEY="{MAILCHIMP_KEY}"\n'
        f"KLAVIYO_API_KEY = '{KLAVIYO_KEY}'\n"
    )


def synced(world, *args, env=None):
    """Run the CLI; it must finish a clean run that reached every vendor, printing no secret."""
    result = world.cli(*args, env=env)
    assert result.exit_code == 0, result.output
    assert world.kommo.log and world.mailchimp.log and world.klaviyo.log
    assert_no_secret(result.output)
    return result


@pytest.fixture
def everywhere(world):
    world.with_mailchimp().with_klaviyo()
    world.kommo.add_contact("Ada", email="ada@firm.io", consent=True)
    return world


# where a secret comes from -----------------------------------------------------------------------
def test_with_no_secret_in_the_environment_the_env_file_named_by_the_config_serves_them_all(
    everywhere,
):
    private_file(everywhere.tmp / "kommo-sync.env", env_file_text())
    everywhere.raw["env_file"] = "kommo-sync.env"  # beside the config
    result = synced(everywhere, "run", env=UNSET)
    assert "warning" not in result.stderr


def test_the_env_file_on_the_command_line_replaces_the_configs(everywhere):
    everywhere.raw["env_file"] = "missing.env"
    env_file = private_file(everywhere.tmp / "cron.env", env_file_text())
    synced(everywhere, "--env-file", str(env_file), "run", env=UNSET)


def test_the_environment_comes_before_the_env_file(everywhere):
    env_file = private_file(everywhere.tmp / "stale.env", "KOMMO_TOKEN=an-old-revoked-token\n")
    synced(everywhere, "run", "--env-file", str(env_file))


def test_a_var_file_holds_the_secret_without_its_trailing_newline(everywhere):
    secret = private_file(everywhere.tmp / "kommo_token", KOMMO_TOKEN + "\n", mode=0o444)
    synced(everywhere, "run", env={"KOMMO_TOKEN": None, "KOMMO_TOKEN_FILE": str(secret)})


def test_a_var_file_named_in_the_env_file_is_read_too(everywhere):
    secret = private_file(everywhere.tmp / "kommo_token", KOMMO_TOKEN + "\n")
    env_file = private_file(everywhere.tmp / "cron.env", f"KOMMO_TOKEN_FILE={secret}\n")
    synced(everywhere, "run", "--env-file", str(env_file), env={"KOMMO_TOKEN": None})


# what is refused ---------------------------------------------------------------------------------
def refused(world, *args, env=None):
    result = world.cli(*args, env=env)
    assert result.exit_code == 2, result.output
    assert (world.kommo.log, world.mailchimp.log, world.klaviyo.log) == ([], [], [])
    assert_no_secret(result.output)
    return result.stderr.strip()


def test_both_var_and_var_file_set_is_a_config_error(world):
    secret = private_file(world.tmp / "kommo_token", KOMMO_TOKEN)
    assert refused(world, "run", env={"KOMMO_TOKEN_FILE": str(secret)}) == (
        "config error: kommo.token: both KOMMO_TOKEN and KOMMO_TOKEN_FILE are set; keep one"
    )


def test_a_var_file_that_cannot_be_read_is_named(world):
    missing = world.tmp / "nowhere"
    assert refused(world, "run", env={"KOMMO_TOKEN": None, "KOMMO_TOKEN_FILE": str(missing)}) == (
        f"config error: kommo.token: KOMMO_TOKEN_FILE: cannot read {missing}: "
        "No such file or directory"
    )


def test_a_missing_env_file_is_named_by_the_key_that_asked_for_it(world):
    world.raw["env_file"] = "kommo-sync.env"
    assert (
        refused(world, "run")
        == f"config error: env_file: file {world.tmp / 'kommo-sync.env'} not found"
    )


def test_a_variable_missing_from_the_env_file_names_the_file(world):
    env_file = private_file(world.tmp / "cron.env", "OTHER=1\n")
    assert refused(world, "run", "--env-file", str(env_file), env=UNSET) == (
        "config error: kommo.token: KOMMO_TOKEN is not set "
        f"(in the environment, as KOMMO_TOKEN_FILE, or in {env_file})"
    )


def test_an_env_file_line_that_is_not_key_value_is_named_by_number_never_shown(world):
    env_file = private_file(
        world.tmp / "cron.env", f"# secrets\nKOMMO_TOKEN={KOMMO_TOKEN}\n{KLAVIYO_KEY}\n"
    )
    assert refused(world, "run", "--env-file", str(env_file), env=UNSET) == (
        f"config error: --env-file: {env_file} line 3 is not KEY=value"
    )


# masking and warnings ----------------------------------------------------------------------------
def test_every_form_a_secret_travels_in_is_one_of_the_config_secrets(everywhere):
    assert everywhere.config().secrets == (
        BASIC_AUTH,
        MAILCHIMP_KEY,
        BARE_KEY,
        KLAVIYO_KEY,
        KOMMO_TOKEN,
    )


def test_a_vendor_echoing_the_key_bare_or_as_basic_auth_prints_neither(everywhere):
    everywhere.mailchimp.faults.add(
        Fault(
            path=r"^/3\.0/",
            status=401,
            times=0,
            body={
                "title": "API Key Invalid",
                "status": 401,
                "detail": f"Key {BARE_KEY} sent as Basic {BASIC_AUTH}",
            },
        )
    )
    result = everywhere.cli("run", "--json")
    assert result.exit_code == 4
    assert "Key *** sent as Basic ***" in result.stdout
    for text in (result.stdout, result.stderr):
        assert BARE_KEY not in text and BASIC_AUTH not in text


def test_an_env_file_readable_by_others_gets_one_warning(everywhere):
    env_file = private_file(everywhere.tmp / "cron.env", env_file_text(), mode=0o644)
    result = synced(everywhere, "run", "--env-file", str(env_file), env=UNSET)
    assert [line for line in result.stderr.splitlines() if "warning" in line] == [
        f"warning: {env_file} is readable by group or others (mode 0644): chmod 600 {env_file}"
    ]


def test_a_secret_written_in_the_config_gets_one_warning_and_is_still_masked(everywhere):
    everywhere.raw["kommo"]["token"] = KOMMO_TOKEN
    everywhere.write_config()
    os.chmod(everywhere.config_path, 0o640)
    result = synced(everywhere, "run", "--json")
    assert [line for line in result.stderr.splitlines() if "warning" in line] == [
        "warning: kommo.token: the secret is written in the config itself; write ${VAR} there "
        "and keep the value in the environment, a VAR_FILE or an env file (mode 0600)",
        f"warning: {everywhere.config_path} holds a secret and is readable by group or others "
        f"(mode 0640): chmod 600 {everywhere.config_path}",
    ]


# the README's cron line, run as cron runs it -----------------------------------------------------
def test_the_readme_cron_line_syncs_with_an_empty_environment(everywhere):
    """Cron gives the job no exported variable: the line must find every secret in its env file."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = re.search(r"`\*/15 \* \* \* \* (cd /opt/kommo-sync .+?)`", readme).group(1)
    home = everywhere.tmp
    # the child paces in real seconds while the sandbox counts in the world's frozen clock,
    # where every request falls in one second: its rate limit is not what this test is about
    everywhere.kommo.rate_window = None
    (home / ".venv").symlink_to(sys.prefix)
    everywhere.raw["state"] = "./kommo-sync.db"
    everywhere.write_config()
    private_file(home / "kommo-sync.env", env_file_text())
    done = subprocess.run(
        ["env", "-i", "/bin/sh", "-c", line.replace("/opt/kommo-sync", str(home))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = (home / "sync.log").read_text()
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), log
    assert "Traceback" not in log and "warning" not in log
    assert_no_secret(log)
    assert [m["email_address"] for m in everywhere.mailchimp.members(everywhere.list_id)] == [
        "ada@firm.io"
    ]
