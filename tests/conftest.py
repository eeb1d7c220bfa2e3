"""The end-to-end harness: the three sandboxes on local ports, a config aimed at them, and
helpers to run the real CLI (click's CliRunner) or the engine, all in simulated time."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kommo_sync.app import build_engine
from kommo_sync.cli import cli
from kommo_sync.clock import FakeClock
from kommo_sync.config import Config, parse_config
from kommo_sync.results import RunOptions, RunResult
from kommo_sync.sandbox.klaviyo import KlaviyoSandbox
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.mailchimp import MailchimpSandbox
from kommo_sync.sandbox.server import SandboxServer
from kommo_sync.state import StateLocation
from tests.postgres_cluster import server_bin_dir, start_cluster

KOMMO_TOKEN = "kommo-secret-token-0001"
MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us1"
KLAVIYO_KEY = "pk_secret_klaviyo_key_0001"
ENV = {
    "KOMMO_TOKEN": KOMMO_TOKEN,
    "MAILCHIMP_API_KEY": MAILCHIMP_KEY,
    "KLAVIYO_API_KEY": KLAVIYO_KEY,
}
SECRETS = tuple(ENV.values())
BACKENDS = ("sqlite", "postgres")
# a module's tests that use `world` run against both state backends: `pytestmark = BOTH_BACKENDS`
BOTH_BACKENDS = pytest.mark.both_backends


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_backends") and "world" in metafunc.fixturenames:
        metafunc.parametrize("world", BACKENDS, indirect=True)


def fresh_schema_url(postgres_url: str) -> str:
    """The test cluster's URL with a schema of its own: a test never sees another's state."""
    return f"{postgres_url}&schema=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=BACKENDS)
def any_state(request: pytest.FixtureRequest, tmp_path: Path) -> StateLocation:
    """A new state on each backend: a SQLite file, then a fresh schema of the test cluster."""
    url = None
    if request.param == "postgres":
        url = fresh_schema_url(request.getfixturevalue("postgres_url"))
    return StateLocation.of(tmp_path / "state.db", url, "test")


class World:
    """Sandboxes + a state file + a config; `cli(...)` and `run(...)` drive kommo-sync."""

    def __init__(self, tmp: Path, clock: FakeClock, state_url: str | None = None):
        self.tmp, self.clock = tmp, clock
        self.kommo = KommoSandbox(clock, token=KOMMO_TOKEN)
        self.mailchimp = MailchimpSandbox(clock, api_key=MAILCHIMP_KEY)
        self.klaviyo = KlaviyoSandbox(clock, api_key=KLAVIYO_KEY)
        self.servers = [
            SandboxServer(app).start() for app in (self.kommo, self.mailchimp, self.klaviyo)
        ]
        self.kommo.add_pipeline(
            "Leads", ["Contact made"], is_main=True
        )  # every Kommo account has one
        self.list_id = self.mailchimp.add_list("CRM contacts")
        self.klaviyo_list = self.klaviyo.add_list("CRM Leads")
        self.raw: dict[str, Any] = {
            "kommo": {
                "base_url": self.servers[0].url,
                "token": "${KOMMO_TOKEN}",
                "consent_field": "Email consent",
                "lead_source_field": "Lead source",
            },
            "state": state_url or str(tmp / "state.db"),
        }
        self.config_path = tmp / "sync.yaml"

    def with_mailchimp(self, **overrides: Any) -> World:
        self.raw["mailchimp"] = {
            "api_key": "${MAILCHIMP_API_KEY}",
            "base_url": self.servers[1].url + "/3.0",
            "list_id": self.list_id,
            **overrides,
        }
        return self

    def with_klaviyo(self, **overrides: Any) -> World:
        self.raw["klaviyo"] = {
            "api_key": "${KLAVIYO_API_KEY}",
            "base_url": self.servers[2].url,
            "list_id": self.klaviyo_list,
            **overrides,
        }
        return self

    def status_id(self, pipeline: int, name: str) -> int:
        """A Kommo status id by pipeline and name (ids other than 142/143 differ per pipeline)."""
        return next(s["id"] for s in self.kommo.statuses(pipeline) if s["name"] == name)

    def config(self) -> Config:
        return parse_config(self.raw, ENV)

    def write_config(self) -> Path:
        self.config_path.write_text(yaml.safe_dump(self.raw))
        return self.config_path

    def run(self, **options: Any) -> RunResult:
        return build_engine(self.config(), self.clock).run(RunOptions(**options))

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Any:
        self.write_config()
        runner = CliRunner()
        return runner.invoke(
            cli,
            ["--config", str(self.config_path), *args],
            obj={"clock": self.clock},
            env={**ENV, **(env or {})},
            catch_exceptions=False,
        )

    def cli_json(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.cli(*args, "--json")
        return result.exit_code, json.loads(result.stdout)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session", autouse=True)
def private_pacing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs on the wall clock share Kommo's pace in a file under XDG_RUNTIME_DIR: the session's
    own, not the user's (another test session on the machine must not slow this one)."""
    before = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    yield
    if before is None:
        del os.environ["XDG_RUNTIME_DIR"]
    else:
        os.environ["XDG_RUNTIME_DIR"] = before


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[World]:
    """The sandboxes and a config; its state in SQLite unless parametrized `postgres`
    (BOTH_BACKENDS), then in a fresh schema of the test cluster."""
    backend = getattr(request, "param", "sqlite")
    url = (
        fresh_schema_url(request.getfixturevalue("postgres_url")) if backend == "postgres" else None
    )
    w = World(tmp_path, clock, url)
    yield w
    w.close()


@pytest.fixture
def sales(world: World) -> int:
    """A Sales pipeline: Incoming leads (unsorted) → Qualified → Proposal → won / lost."""
    return world.kommo.add_pipeline("Sales", ["Qualified", "Proposal"], is_main=True)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, "a secret leaked into output"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster for the session (tests/postgres_cluster.py). Without the
    server binaries the tests that need it are skipped, except under CI=true, where they fail."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found (Debian package `postgresql`)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": .ci/run installs them")
        pytest.skip(message)
    cluster = start_cluster(bin_dir)
    try:
        yield cluster.url
    finally:
        cluster.stop()
