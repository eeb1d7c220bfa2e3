"""Issue 16, examples/: the Airflow, Dagster and Prefect examples' kommo_sync part is plain
functions, run here without any orchestrator installed: they find the account folders, sync an
account through `kommo_sync.sync()` and fail (RunFailed) on a non-zero outcome."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import kommo_sync
from kommo_sync.clock import Clock
from tests.conftest import ENV, World

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODULES = ("airflow_dag", "dagster_job", "prefect_flow")


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, World]]:
    """acme: two people; rejecting: one address Mailchimp refuses (exit 1)."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    worlds = {}
    for name, email in (("acme", "ada@analytical.io"), ("rejecting", "test@example.com")):
        (tmp_path / name).mkdir()
        world = worlds[name] = World(tmp_path / name, Clock())  # type: ignore[arg-type]
        world.kommo.rate_window = None
        world.with_mailchimp()
        world.kommo.add_contact("One", email=email, consent=True)
        world.kommo.add_contact("Two", email=f"two@{name}.io", consent=True)
        world.write_config()
    yield worlds
    for world in worlds.values():
        world.close()


@pytest.mark.parametrize("name", MODULES)
def test_the_example_imports_without_its_orchestrator_and_finds_each_account(
    name, accounts, tmp_path
):
    module = example(name)
    found = module.account_configs(str(tmp_path))
    configs = list(found.values()) if isinstance(found, dict) else found
    assert configs == [str(tmp_path / n / "sync.yaml") for n in ("acme", "rejecting")]


@pytest.mark.parametrize("name", MODULES)
def test_the_example_syncs_an_account_and_fails_on_a_non_zero_outcome(name, accounts):
    module = example(name)
    acme, rejecting = (str(accounts[n].config_path) for n in ("acme", "rejecting"))
    assert module.sync_account(acme) == {
        "account": "acme",
        "exit_code": 0,
        "people": 2,
        "pushed": 2,
        "rejected": 0,
    }
    assert accounts["acme"].mailchimp.member(accounts["acme"].list_id, "ada@analytical.io")
    with pytest.raises(kommo_sync.RunFailed) as failed:
        module.sync_account(rejecting)
    assert (failed.value.account, failed.value.exit_code) == ("rejecting", 1)
    assert kommo_sync.exit_code_of(failed.value) == 1
