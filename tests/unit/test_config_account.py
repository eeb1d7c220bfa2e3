"""`account:`: the label every log line, JSON object, metric and alert carries."""

from pathlib import Path

import pytest

from kommo_sync.config import parse_config
from kommo_sync.errors import ConfigError

BASE = {"kommo": {"base_url": "https://acme.kommo.com", "token": "t"}}


def test_an_explicit_account_is_the_label(tmp_path: Path) -> None:
    assert parse_config({**BASE, "account": "acme-co"}, {}, base_dir=tmp_path).account == "acme-co"


def test_without_it_the_config_folder_names_the_account(tmp_path: Path) -> None:
    folder = tmp_path / "Client One (EU)"
    folder.mkdir()
    assert parse_config(BASE, {}, base_dir=folder).account == "Client-One-EU"


def test_a_label_with_spaces_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, "account": "acme co"}, {}, base_dir=tmp_path)
    assert caught.value.key == "account"
