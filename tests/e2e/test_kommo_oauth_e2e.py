"""`kommo-sync run` and `check` with a Kommo OAuth integration: the refresh token rotates and
the stored one carries the next run; a revoked one ends the run with exit 4 naming the key."""

from __future__ import annotations

from tests.conftest import assert_no_secret

SECRET, INITIAL = "oauth-client-secret-01", "oauth-initial-refresh-01"
ENV = {"KOMMO_CLIENT_SECRET": SECRET, "KOMMO_REFRESH_TOKEN": INITIAL}


def use_oauth(world):
    issuer = world.kommo.use_oauth("integration-0001", SECRET, INITIAL, expires_in=600)
    kommo = world.raw["kommo"]
    del kommo["token"]
    kommo["oauth"] = {
        "client_id": "integration-0001",
        "client_secret": "${KOMMO_CLIENT_SECRET}",
        "redirect_uri": "https://agency.example/oauth",
        "refresh_token": "${KOMMO_REFRESH_TOKEN}",
        "token_store": "kommo.token",
    }
    return issuer


def test_two_runs_rotate_the_refresh_token_through_the_store(world, sales):
    issuer = use_oauth(world)
    world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io")
    first = world.cli("run", env=ENV)
    assert first.exit_code == 0, first.output
    store = world.tmp / "kommo.token"
    assert store.read_text().strip() == "sandbox-refresh-000001"
    world.clock.advance(3600)  # the first access token has expired
    second = world.cli("run", env=ENV)
    assert second.exit_code == 0, second.output
    assert issuer.refreshes == 2 and store.read_text().strip() == "sandbox-refresh-000002"
    assert_no_secret(first.output, second.output)
    assert SECRET not in first.output + second.output


def test_a_revoked_integration_exits_4_naming_the_key_without_a_traceback(world, sales):
    issuer = use_oauth(world)
    issuer.revoke()
    result = world.cli("run", env=ENV)
    assert result.exit_code == 4
    assert "kommo.oauth.refresh_token" in result.output
    assert "Traceback" not in result.output and INITIAL not in result.output


def test_check_reports_the_oauth_login(world, sales):
    use_oauth(world)
    result = world.cli("check", env=ENV)
    assert "kommo.oauth.refresh_token" in result.output and "OAuth" in result.output
