"""Issue 16: finding the accounts of `run --accounts` and the one exit code of a set."""

from pathlib import Path

import pytest

from kommo_sync.accounts import Account, find_accounts, set_exit_code, status_of
from kommo_sync.errors import ConfigError


def account_folder(root: Path, name: str) -> Path:
    (root / name).mkdir(parents=True)
    config = root / name / "sync.yaml"
    config.write_text("kommo: {}\n")
    return config


def test_a_folder_yields_its_account_folders_by_name_skipping_hidden_and_configless(tmp_path):
    beta, acme = account_folder(tmp_path, "beta"), account_folder(tmp_path, "acme")
    account_folder(tmp_path, ".trash")
    (tmp_path / "notes").mkdir()
    (tmp_path / "README").write_text("not an account")
    assert find_accounts([tmp_path]) == [Account("acme", acme), Account("beta", beta)]


def test_files_and_folders_mix_in_the_order_given_and_each_config_counts_once(tmp_path):
    acme = account_folder(tmp_path / "set", "acme")
    solo = account_folder(tmp_path, "solo")
    found = find_accounts([solo, tmp_path / "set", acme])
    assert found == [Account("solo", solo), Account("acme", acme)]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_path_with_no_account_is_a_config_error_naming_the_option(tmp_path, make):
    path = tmp_path / make
    if make == "empty":
        path.mkdir()
    with pytest.raises(ConfigError) as raised:
        find_accounts([path])
    assert raised.value.key == "--accounts" and str(path) in raised.value.problem


def test_no_path_at_all_is_a_config_error():
    with pytest.raises(ConfigError):
        find_accounts([])


@pytest.mark.parametrize(
    "codes, expected",
    [
        ([], 0),
        ([0, 0], 0),
        ([0, 1, 0], 1),
        ([1, 2, 0], 2),
        ([2, 4, 1], 4),
        ([4, 3], 4),
        ([3, 3], 0),  # locked: busy with its own run, not a failure
        ([3, 1], 1),
        ([0, -9], 4),  # killed: outside the contract, a failure
        ([143, 0], 4),
    ],
)
def test_the_set_exits_with_its_worst_account_by_4_2_1_0_locked_counting_as_0(codes, expected):
    assert set_exit_code(codes) == expected


def test_each_code_has_a_status_and_a_code_outside_the_contract_is_a_crash():
    assert [status_of(c) for c in (0, 1, 2, 3, 4, 130, 143, -9)] == [
        "ok",
        "rejected",
        "config",
        "locked",
        "fatal",
        "interrupted",
        "interrupted",
        "crashed",
    ]
