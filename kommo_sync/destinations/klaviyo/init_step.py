"""How `kommo-sync init` connects Klaviyo: the private key, the list every profile joins, picked
from the account, and the commented `klaviyo:` section it writes."""

from __future__ import annotations

from typing import Any

from kommo_sync.checklist import Named
from kommo_sync.clock import Clock
from kommo_sync.destinations.klaviyo.api import klaviyo_http
from kommo_sync.destinations.klaviyo.checks import klaviyo_lists
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.destinations.registry import InitStep
from kommo_sync.setup_files import scalar


def lists(config: KlaviyoConfig, clock: Clock, timeout: float) -> list[Named]:
    return klaviyo_lists(klaviyo_http(config, clock, timeout))


def section_yaml(section: dict[str, Any], chosen: Named, listed: list[Named]) -> list[str]:
    others = ", ".join(item.label() for item in listed if item.id != chosen.id) or "none"
    lines = [
        "klaviyo:",
        "  # a private key with the profiles, lists, events and subscriptions scopes",
        "  api_key: ${KLAVIYO_API_KEY}",
    ]
    if "base_url" in section:
        lines.append(f"  base_url: {scalar(section['base_url'])}")
    return lines + [
        f"  # list {chosen.name!r}: every synced profile joins it",
        f"  list_id: {scalar(section['list_id'])}",
        "  # lists joined and left as the stage changes (new, in_progress, won, lost);",
        f"  # other lists: {others}",
        "  # lists_by_stage: {won: <list id>}",
        "  # the region of phone numbers stored without a country code",
        "  # phone_region: DE",
    ]


INIT = InitStep(
    title="Klaviyo",
    key_prompt="Klaviyo private API key",
    key_env="KLAVIYO_API_KEY",
    key_help="Klaviyo private key (or KLAVIYO_API_KEY).",
    url_help="Klaviyo API host (default: https://a.klaviyo.com).",
    pick="list",
    pick_help="Klaviyo list every profile joins: name or id.",
    question="Klaviyo list every profile joins",
    listing=lists,
    yaml=section_yaml,
)
