"""The files `init` writes: the commented sync.yaml, and the env file with the secrets (mode 0600
from its creation); neither replaces an existing file."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from kommo_sync.errors import ConfigError

CONFIG_NAME, ENV_NAME, STATE_NAME = "sync.yaml", "kommo-sync.env", "kommo-sync.db"


class DraftSections(Protocol):
    """What the wizard gathered: the config sections and the comments written beside them."""

    sections: dict[str, dict[str, Any]]
    comments: dict[str, str]


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
    if "mailchimp" in draft.sections:
        lines += ["", *_mailchimp_yaml(draft)]
    if "klaviyo" in draft.sections:
        lines += ["", *_klaviyo_yaml(draft)]
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


def _mailchimp_yaml(draft: DraftSections) -> list[str]:
    mailchimp = draft.sections["mailchimp"]
    lines = [
        "mailchimp:",
        "  # the key's data center (its -us6 suffix) picks the host",
        "  api_key: ${MAILCHIMP_API_KEY}",
    ]
    if "base_url" in mailchimp:
        lines.append(f"  base_url: {scalar(mailchimp['base_url'])}")
    return lines + [
        f"  # audience {draft.comments['audience']!r}",
        f"  list_id: {scalar(mailchimp['list_id'])}",
        "  # new people without consent: skip | transactional | pending (double opt-in)",
        "  without_consent: skip",
    ]


def _klaviyo_yaml(draft: DraftSections) -> list[str]:
    klaviyo = draft.sections["klaviyo"]
    lines = [
        "klaviyo:",
        "  # a private key with the profiles, lists, events and subscriptions scopes",
        "  api_key: ${KLAVIYO_API_KEY}",
    ]
    if "base_url" in klaviyo:
        lines.append(f"  base_url: {scalar(klaviyo['base_url'])}")
    return lines + [
        f"  # list {draft.comments['list']!r}: every synced profile joins it",
        f"  list_id: {scalar(klaviyo['list_id'])}",
        "  # lists joined and left as the stage changes (new, in_progress, won, lost);",
        f"  # other lists: {draft.comments['other_lists']}",
        "  # lists_by_stage: {won: <list id>}",
        "  # the region of phone numbers stored without a country code",
        "  # phone_region: DE",
    ]


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
