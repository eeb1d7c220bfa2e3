"""`kommo-sync run` and `check` with `kommo.oauth.token_store: state`: the rotated tokens live
encrypted in the state (no volume beside it), a new process reuses an unexpired access token,
a dry run still keeps a rotated token, and a missing key is named before any request."""

from __future__ import annotations

from cryptography.fernet import Fernet

from kommo_sync.kommo_tokens import STATE_ROW
from kommo_sync.state import State
from tests.conftest import assert_no_secret
from tests.e2e.test_kommo_oauth_e2e import ENV as OAUTH_ENV
from tests.e2e.test_kommo_oauth_e2e import use_oauth

KEY = Fernet.generate_key().decode()
ENV = {**OAUTH_ENV, "KOMMO_SYNC_TOKEN_KEY": KEY}


def in_state(world):
    issuer = use_oauth(world)
    world.raw["kommo"]["oauth"]["token_store"] = "state"
    return issuer


def state_bytes(world) -> bytes:
    return b"".join(p.read_bytes() for p in world.tmp.iterdir() if p.name.startswith("state.db"))


def stored(world) -> str | None:
    """The sealed token row, None when there is none."""
    with State.open(world.tmp / "state.db") as state:
        return state.meta(*STATE_ROW)


def test_two_runs_rotate_the_token_through_the_state_and_no_token_lies_in_it(world, sales):
    issuer = in_state(world)
    world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io")
    first = world.cli("run", env=ENV)
    assert first.exit_code == 0, first.output
    after_first = stored(world)
    world.clock.advance(3600)  # the first access token has expired
    second = world.cli("run", env=ENV)
    assert second.exit_code == 0, second.output
    assert after_first is not None and issuer.refreshes == 2 and stored(world) != after_first
    assert not list(world.tmp.glob("*kommo-token*"))  # nothing beside the state
    data = state_bytes(world)
    assert b"sandbox-refresh-00000" not in data and KEY.encode() not in data
    assert all(token.encode() not in data for token in issuer.access)
    assert_no_secret(first.output, second.output)
    assert KEY not in first.output + second.output


def test_a_new_process_reuses_the_stored_access_token(world, sales):
    issuer = in_state(world)
    assert world.cli("run", env=ENV).exit_code == 0
    world.clock.advance(60)
    again = world.cli("run", env=ENV)
    assert again.exit_code == 0, again.output
    assert issuer.refreshes == 1


def test_a_dry_run_still_keeps_the_rotated_token(world, sales):
    issuer = in_state(world)
    assert world.cli("run", env=ENV).exit_code == 0
    world.clock.advance(3600)
    dry = world.cli("run", "--dry-run", env=ENV)
    assert dry.exit_code == 0, dry.output
    world.clock.advance(3600)  # the next run refreshes with the token the dry run got
    later = world.cli("run", env=ENV)
    assert later.exit_code == 0, later.output
    assert issuer.refreshes == 3


def test_check_names_the_key_when_it_is_missing(world, sales):
    in_state(world)
    result = world.cli("check", env=OAUTH_ENV)
    assert result.exit_code == 2
    assert "kommo.oauth.token_store" in result.output and "KOMMO_SYNC_TOKEN_KEY" in result.output
    assert "Traceback" not in result.output


def test_a_first_dry_run_creates_the_state_to_keep_the_token(world, sales):
    issuer = in_state(world)
    dry = world.cli("run", "--dry-run", env=ENV)
    assert dry.exit_code == 0, dry.output
    assert stored(world) is not None  # the spent initial token's successor is kept
    world.clock.advance(3600)
    assert world.cli("run", env=ENV).exit_code == 0
    assert issuer.refreshes == 2
