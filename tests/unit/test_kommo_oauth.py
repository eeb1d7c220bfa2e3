"""Kommo OAuth: the config section, and the token manager against the sandbox's OAuth mode
(refresh before expiry, on a 401, once for many threads, the rotated token stored first)."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.config import parse_config
from kommo_sync.errors import ConfigError, FatalError
from kommo_sync.kommo import kommo_http

ENV = {"KOMMO_CLIENT_SECRET": "client-secret-0001", "KOMMO_REFRESH_TOKEN": "refresh-initial-01"}


def raw(url: str, tmp: Path, **oauth: Any) -> dict[str, Any]:
    section = {
        "client_id": "integration-0001",
        "client_secret": "${KOMMO_CLIENT_SECRET}",
        "redirect_uri": "https://agency.example/oauth",
        "refresh_token": "${KOMMO_REFRESH_TOKEN}",
        **oauth,
    }
    return {"kommo": {"base_url": url, "oauth": section}, "state": str(tmp / "state.db")}


def client(url: str, tmp: Path, clock: FakeClock, env: dict[str, str] = ENV) -> Any:
    return kommo_http(parse_config(raw(url, tmp), env, base_dir=tmp).kommo, clock)


def test_oauth_section_defaults_the_store_beside_the_state_and_masks_its_secrets(tmp_path):
    config = parse_config(raw("https://acme.kommo.com", tmp_path), ENV, base_dir=tmp_path)
    assert config.kommo.oauth is not None and config.kommo.token == ""
    assert config.kommo.oauth.token_store == tmp_path / "state.db.kommo-token"
    assert set(ENV.values()) <= set(config.secrets)


def test_token_and_oauth_together_or_neither_name_the_key(tmp_path):
    both = raw("https://acme.kommo.com", tmp_path)
    both["kommo"]["token"] = "x"
    with pytest.raises(ConfigError, match="not both") as error:
        parse_config(both, ENV)
    assert error.value.key == "kommo.oauth"
    with pytest.raises(ConfigError) as error:
        parse_config({"kommo": {"base_url": "https://acme.kommo.com"}}, ENV)
    assert error.value.key == "kommo.token" and "kommo.oauth" in error.value.problem
    missing = raw("https://acme.kommo.com", tmp_path)
    del missing["kommo"]["oauth"]["redirect_uri"]
    with pytest.raises(ConfigError) as error:
        parse_config(missing, ENV)
    assert error.value.key == "kommo.oauth.redirect_uri"


def test_a_literal_client_secret_is_warned_about(tmp_path):
    config = parse_config(
        raw("https://acme.kommo.com", tmp_path, client_secret="literal"), ENV, base_dir=tmp_path
    )
    assert any("kommo.oauth.client_secret" in w for w in config.warnings)


def test_refreshes_before_expiry_and_stores_the_rotated_token_0600(oauth_kommo, tmp_path, clock):
    url, issuer = oauth_kommo
    http = client(url, tmp_path, clock)
    assert http.get_json("/api/v4/account")["id"]
    store = tmp_path / "state.db.kommo-token"
    assert store.read_text().strip() == "sandbox-refresh-000001"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    clock.advance(3600 - 300)  # inside the margin: refreshed before Kommo would say 401
    http.get_json("/api/v4/account")
    assert issuer.refreshes == 2 and store.read_text().strip() == "sandbox-refresh-000002"
    assert not [r for r in http.session.auth.store.path.parent.iterdir() if r.name.startswith(".")]


def test_a_401_refreshes_once_and_the_request_is_resent(oauth_kommo, tmp_path, clock):
    url, issuer = oauth_kommo
    http = client(url, tmp_path, clock)
    http.get_json("/api/v4/account")
    issuer.access.clear()  # Kommo forgot the access token (revoked by a password change)
    assert http.get_json("/api/v4/account")["id"]
    assert issuer.refreshes == 2


def test_many_threads_share_one_refresh(oauth_kommo, tmp_path, clock):
    url, issuer = oauth_kommo
    http = client(url, tmp_path, clock)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: http.get_json("/api/v4/account"), range(8)))
    assert len(answers) == 8 and issuer.refreshes == 1


def test_the_next_process_starts_from_the_stored_token(oauth_kommo, tmp_path, clock):
    url, issuer = oauth_kommo
    client(url, tmp_path, clock).get_json("/api/v4/account")  # refreshed, stored, then "dies"
    assert ENV["KOMMO_REFRESH_TOKEN"] not in issuer.refresh_tokens  # the initial one is spent
    client(url, tmp_path, clock).get_json("/api/v4/account")
    assert issuer.refreshes == 2


def test_a_revoked_refresh_token_is_fatal_and_names_the_key(oauth_kommo, tmp_path, clock):
    url, issuer = oauth_kommo
    issuer.revoke()
    with pytest.raises(FatalError) as error:
        client(url, tmp_path, clock).get_json("/api/v4/account")
    message = str(error.value)
    assert "kommo.oauth.refresh_token" in message and "integration-0001" in message
    assert all(secret not in message for secret in ENV.values())


def test_a_re_authorised_config_token_is_tried_when_the_stored_one_is_refused(
    oauth_kommo, tmp_path, clock
):
    url, issuer = oauth_kommo
    client(url, tmp_path, clock).get_json("/api/v4/account")
    issuer.revoke()
    issuer.refresh_tokens.add("refresh-reauthorised")
    env = {**ENV, "KOMMO_REFRESH_TOKEN": "refresh-reauthorised"}
    assert client(url, tmp_path, clock, env).get_json("/api/v4/account")["id"]
    assert (tmp_path / "state.db.kommo-token").read_text().strip() == "sandbox-refresh-000002"


def test_a_store_others_can_read_is_warned_about(oauth_kommo, tmp_path, clock, caplog):
    url, _ = oauth_kommo
    client(url, tmp_path, clock).get_json("/api/v4/account")
    store = tmp_path / "state.db.kommo-token"
    store.chmod(0o644)
    client(url, tmp_path, clock).get_json("/api/v4/account")
    assert any("chmod 600" in r.getMessage() for r in caplog.records)
    assert store.read_text().strip() == "sandbox-refresh-000002"
