"""The files `init` writes: the commented sync.yaml (each connected destination writes its own
section), and the env file with the secrets (mode 0600 from its creation); neither replaces an
existing file."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from kommo_sync.checklist import Named
from kommo_sync.destinations import registry
from kommo_sync.errors import ConfigError

CONFIG_NAME, ENV_NAME, STATE_NAME = "sync.yaml", "kommo-sync.env", "kommo-sync.db"


class DraftSections(Protocol):
    """What the wizard gathered: the config sections and the comments written beside them."""

    sections: dict[str, dict[str, Any]]
    comments: dict[str, str]
    picked: dict[str, tuple[Named, list[Named]]]


def scalar(value: Any) -> str:
    """A YAML scalar that reads back as written (JSON strings are YAML)."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def render(draft: DraftSections) -> str:
    """The commented sync.yaml."""
    lines = [
        f"# kommo-sync configuration, written by `kommo-sync init` on {date.today().isoformat()}.",
        "# Secrets are not in this file: ${VAR} is read from the environment, a VAR_FILE, or the",
        "# env file named here (keep it mode 0600). sync.yaml.example explains every key.",
        f"env_file: {ENV_NAME}",
        "",
        *_kommo_yaml(draft),
        "",
        "# the state file (mode 0600: it holds personal data)",
        f"state: {STATE_NAME}",
    ]
    for vendor in registry.vendors():
        if vendor.init is not None and vendor.name in draft.picked:
            chosen, listed = draft.picked[vendor.name]
            lines += ["", *vendor.init.yaml(draft.sections[vendor.name], chosen, listed)]
    return "\n".join(lines) + "\n"


def _kommo_yaml(draft: DraftSections) -> list[str]:
    kommo = draft.sections["kommo"]
    lines = [
        "kommo:",
        f"  base_url: {scalar(kommo['base_url'])}",
        "  token: ${KOMMO_TOKEN}",
        "  # the email-consent checkbox (without one, consent is not tracked); checkbox fields:",
        f"  #   {draft.comments['boxes']}",
        _optional("consent_field", kommo),
        "  # a contact field synced as the lead source; optional",
        _optional("lead_source_field", kommo),
        "  # pipelines to sync (empty: all); this account has:",
        f"  #   {draft.comments['pipelines']}",
    ]
    picked = kommo["pipelines"]
    return lines + (
        ["  pipelines:", *[f"    - {scalar(name)}" for name in picked]]
        if picked
        else ["  pipelines: []"]
    )


def _optional(key: str, section: dict[str, Any]) -> str:
    return f"  {key}: {scalar(section[key])}" if key in section else f"  # {key}:"


def write_files(targets: tuple[Path, Path], text: str, secrets: dict[str, str]) -> None:
    """The env file first (mode 0600 from its creation), then the config; neither replaces a
    file."""
    config_path, env_path = targets
    config_path.parent.mkdir(parents=True, exist_ok=True)
    env_lines = ["# kommo-sync secrets (sync.yaml names this file); keep it readable by you alone"]
    _create(env_path, "\n".join(env_lines + [f"{k}={v}" for k, v in secrets.items()]) + "\n", 0o600)
    try:
        _create(config_path, text, 0o644)
    except ConfigError:
        env_path.unlink()
        raise


def _create(path: Path, text: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError("--dir", f"{path} exists: init never overwrites a file") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
