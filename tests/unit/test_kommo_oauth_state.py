"""`kommo.oauth.token_store: state`: the tokens encrypted in the state's destination_meta, the
key from the environment; a new process reuses the stored access token, a rotated key falls
back to the config's refresh token, and no token is readable in the state file's bytes."""

from __future__ import annotations

import builtins
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from kommo_sync.clock import FakeClock
from kommo_sync.config import parse_config
from kommo_sync.errors import ConfigError, FatalError
from kommo_sync.kommo import kommo_http
from kommo_sync.kommo_tokens import STATE_ROW, StateTokenStore, StoredTokens
from kommo_sync.state import State, StateLocation
from kommo_sync.token_cipher import TokenCipher, UndecryptableToken
from tests.conftest import fresh_schema_url
from tests.unit.test_kommo_oauth import ENV as OAUTH_ENV
from tests.unit.test_kommo_oauth import raw

KEY = Fernet.generate_key().decode()
ENV = {**OAUTH_ENV, "KOMMO_SYNC_TOKEN_KEY": KEY}


def config(url: str, tmp: Path, env: dict[str, str] = ENV, **oauth: Any) -> Any:
    return parse_config(raw(url, tmp, token_store="state", **oauth), env, base_dir=tmp)


def client(url: str, tmp: Path, clock: FakeClock, env: dict[str, str] = ENV) -> Any:
    return kommo_http(config(url, tmp, env).kommo, clock)


def state_bytes(tmp: Path) -> bytes:
    """The state file and its WAL as they lie on disk."""
    return b"".join(p.read_bytes() for p in tmp.iterdir() if p.name.startswith("state.db"))


def test_the_cipher_round_trips_and_refuses_another_key():
    sealed = TokenCipher(KEY, "K", "where").encrypt("refresh-secret")
    assert "refresh-secret" not in sealed
    assert TokenCipher(KEY, "K", "where").decrypt(sealed) == "refresh-secret"
    other = TokenCipher(Fernet.generate_key().decode(), "K", "where")
    with pytest.raises(UndecryptableToken):
        other.decrypt(sealed)


def test_a_missing_key_names_the_store_and_the_variable(tmp_path):
    with pytest.raises(ConfigError) as error:
        config("https://acme.kommo.com", tmp_path, OAUTH_ENV)
    assert error.value.key == "kommo.oauth.token_store"
    assert "$KOMMO_SYNC_TOKEN_KEY" in error.value.problem and "generate_key" in error.value.problem


def test_an_invalid_key_is_refused_without_printing_it(tmp_path):
    env = {**OAUTH_ENV, "MY_KEY": "not-a-fernet-key-0001"}
    with pytest.raises(ConfigError) as error:
        config("https://acme.kommo.com", tmp_path, env, token_key_env="MY_KEY")
    assert error.value.key == "kommo.oauth.token_store" and "$MY_KEY" in error.value.problem
    assert "not-a-fernet-key-0001" not in str(error.value)


def test_the_key_is_a_secret_and_the_store_is_the_state(tmp_path):
    loaded = config("https://acme.kommo.com", tmp_path)
    assert KEY in loaded.secrets and KEY not in repr(loaded)
    assert loaded.kommo.oauth.in_state and loaded.kommo.oauth.token_store == tmp_path / "state.db"


def test_without_cryptography_the_error_names_the_extra(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_cryptography(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("cryptography"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cryptography)
    with pytest.raises(ConfigError) as error:
        config("https://acme.kommo.com", tmp_path)
    assert error.value.key == "kommo.oauth.token_store" and "oauth-state" in error.value.problem


def test_the_rotated_token_is_stored_encrypted_in_destination_meta(oauth_kommo, tmp_path, clock):
    url, issuer = oauth_kommo
    assert client(url, tmp_path, clock).get_json("/api/v4/account")["id"]
    with State.open(tmp_path / "state.db") as state:
        sealed = state.meta(*STATE_ROW)
    assert isinstance(sealed, str) and "sandbox-refresh" not in sealed
    access = next(iter(issuer.access))
    data = state_bytes(tmp_path)
    assert b"sandbox-refresh-000001" not in data and access.encode() not in data
    assert sealed.encode() in data  # the row is there, sealed


def test_a_new_process_reuses_the_unexpired_access_token(oauth_kommo, tmp_path, clock):
    url, issuer = oauth_kommo
    client(url, tmp_path, clock).get_json("/api/v4/account")
    clock.advance(1800)
    assert client(url, tmp_path, clock).get_json("/api/v4/account")["id"]
    assert issuer.refreshes == 1
    clock.advance(1800)  # now due: the next process refreshes with the stored refresh token
    client(url, tmp_path, clock).get_json("/api/v4/account")
    assert issuer.refreshes == 2


def test_a_rotated_key_falls_back_to_the_config_token_with_one_warning(
    oauth_kommo, tmp_path, clock, caplog
):
    url, issuer = oauth_kommo
    client(url, tmp_path, clock).get_json("/api/v4/account")
    issuer.refresh_tokens.add("refresh-reauthorised")
    env = {
        **ENV,
        "KOMMO_SYNC_TOKEN_KEY": Fernet.generate_key().decode(),
        "KOMMO_REFRESH_TOKEN": "refresh-reauthorised",
    }
    assert client(url, tmp_path, clock, env).get_json("/api/v4/account")["id"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "kommo.oauth.refresh_token" in warnings[0].getMessage()
    assert issuer.refreshes == 2


def test_a_rotated_key_and_a_spent_config_token_are_fatal_naming_the_key(
    oauth_kommo, tmp_path, clock
):
    url, _ = oauth_kommo
    client(url, tmp_path, clock).get_json("/api/v4/account")  # the config's token is spent
    env = {**ENV, "KOMMO_SYNC_TOKEN_KEY": Fernet.generate_key().decode()}
    with pytest.raises(FatalError) as error:
        client(url, tmp_path, clock, env).get_json("/api/v4/account")
    assert "kommo.oauth.refresh_token" in str(error.value)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_save_from_another_thread_beside_the_runs_open_state(tmp_path, request, backend):
    url = None
    if backend == "postgres":
        url = fresh_schema_url(request.getfixturevalue("postgres_url"))
    location = StateLocation.of(tmp_path / "state.db", url, "acme")
    store = StateTokenStore(location, TokenCipher(KEY, "K", "where"))
    with location.open() as state:
        thread = threading.Thread(target=store.save, args=(StoredTokens("r-1", "a-1", 9.0),))
        thread.start()
        thread.join()
        assert state.meta(*STATE_ROW) is not None  # visible to the run's own connection
    assert store.load() == StoredTokens("r-1", "a-1", 9.0)


def test_token_key_env_without_the_state_store_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse_config(raw("https://acme.kommo.com", tmp_path, token_key_env="K"), ENV)
    assert error.value.key == "kommo.oauth.token_key_env" and "state" in error.value.problem
