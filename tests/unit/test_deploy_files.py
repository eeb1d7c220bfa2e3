"""The shipped Dockerfile and systemd units, read as text: what they promise holds."""

import configparser
import json
import tomllib
from pathlib import Path

import pytest

from kommo_sync.deploy import STOP_BOUND_SECONDS, STOP_GRACE_SECONDS
from kommo_sync.shared_pacing import default_file

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _dockerfile() -> list[tuple[str, str]]:
    lines, joined = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        joined += raw.rstrip("\\").strip() + " "
        if not raw.endswith("\\"):
            word, _, rest = joined.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
            joined = ""
    return lines


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def test_dockerfile_runs_as_a_fixed_non_root_user() -> None:
    users = [rest for word, rest in _dockerfile() if word == "USER"]
    assert users and users[-1] not in {"root", "0"} and users[-1].isdigit()


def test_dockerfile_entrypoint_is_the_cli_with_run_by_default() -> None:
    by_word = dict(_dockerfile())
    assert json.loads(by_word["ENTRYPOINT"]) == ["kommo-sync"]
    assert json.loads(by_word["CMD"]) == ["run"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "kommo-sync" in scripts


def test_dockerfile_copies_what_exists_and_installs_the_project() -> None:
    sources = [src for word, rest in _dockerfile() if word == "COPY" for src in rest.split()[:-1]]
    assert all((ROOT / src).exists() for src in sources), sources
    assert {"pyproject.toml", "README.md", "kommo_sync/"} <= set(sources)
    assert any(
        word == "RUN" and 'pip install --no-cache-dir ".[postgres,oauth-state]"' in rest
        for word, rest in _dockerfile()
    )
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(dep.startswith("psycopg") for dep in extras["postgres"])  # `state:` may be a URL
    assert any(dep.startswith("cryptography") for dep in extras["oauth-state"])  # a token in state


def test_service_is_a_hardened_oneshot_per_account() -> None:
    service = _unit("kommo-sync@.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["User"] == "kommo-sync"
    assert service["EnvironmentFile"] == "/etc/kommo-sync/%i/env"
    assert "/etc/kommo-sync/%i/sync.yaml" in service["ExecStart"]
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["StateDirectory"]
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) == STOP_GRACE_SECONDS > STOP_BOUND_SECONDS


def test_service_instances_share_kommo_pacing_in_one_kept_runtime_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = _unit("kommo-sync@.service")["Service"]
    variable, _, value = service["Environment"].partition("=")
    monkeypatch.setenv(variable, value)
    folder = Path("/run") / service["RuntimeDirectory"]
    assert default_file() == folder / "pacing.db"
    assert service["RuntimeDirectoryPreserve"] == "yes"
    assert service["RuntimeDirectoryMode"] == "0700"


def test_timer_runs_every_quarter_hour_and_catches_up() -> None:
    timer = _unit("kommo-sync@.timer")["Timer"]
    assert timer["OnCalendar"] == "*:0/15"
    assert timer["Persistent"] == "true"
    assert int(timer["RandomizedDelaySec"]) > 0
