"""How `kommo-sync init` connects Mailchimp: the key, the audience picked from the account, and
the commented `mailchimp:` section it writes."""

from __future__ import annotations

from typing import Any

from kommo_sync.checklist import Named
from kommo_sync.clock import Clock
from kommo_sync.destinations.mailchimp.api import mailchimp_http
from kommo_sync.destinations.mailchimp.checks import mailchimp_audiences
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.destinations.registry import InitStep
from kommo_sync.setup_files import scalar


def audiences(config: MailchimpConfig, clock: Clock, timeout: float) -> list[Named]:
    return mailchimp_audiences(mailchimp_http(config, clock, timeout))


def section_yaml(section: dict[str, Any], audience: Named, listed: list[Named]) -> list[str]:
    lines = [
        "mailchimp:",
        "  # the key's data center (its -us6 suffix) picks the host",
        "  api_key: ${MAILCHIMP_API_KEY}",
    ]
    if "base_url" in section:
        lines.append(f"  base_url: {scalar(section['base_url'])}")
    return lines + [
        f"  # audience {audience.name!r}",
        f"  list_id: {scalar(section['list_id'])}",
        "  # new people without consent: skip | transactional | pending (double opt-in)",
        "  without_consent: skip",
    ]


def key_forms(key: str) -> tuple[str, ...]:
    """The key in every form it travels in (bare, without its data center, in the header)."""
    return MailchimpConfig(api_key=key, list_id="", base_url="").secrets()


INIT = InitStep(
    title="Mailchimp",
    key_prompt="Mailchimp API key",
    key_env="MAILCHIMP_API_KEY",
    key_help="Mailchimp API key (or MAILCHIMP_API_KEY).",
    url_help="Mailchimp API base URL (default: from the key's data center).",
    pick="audience",
    pick_help="Mailchimp audience: name, id or web id.",
    question="Mailchimp audience",
    listing=audiences,
    yaml=section_yaml,
    secret_forms=key_forms,
)
