"""The `mailchimp:` section of sync.yaml: its dataclass, its parser and its secrets."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kommo_sync.config_reader import Section, did_you_mean, origin
from kommo_sync.errors import ConfigError

DEFAULT_MERGE_FIELDS = {"PHONE": "phone", "COMPANY": "company", "LEADSOURCE": "lead_source"}
CONTACT_ATTRIBUTES = (
    "phone",
    "company",
    "lead_source",
    "first_name",
    "last_name",
    "email",
    "stage",
    "deal_name",
    "deal_amount",
    "deal_stage",
    "pipeline",
)
MAILCHIMP_USER = "kommo-sync"  # the Basic-auth user name sent with the Mailchimp key
DATA_CENTER = re.compile(r"[a-z]{2}[0-9]{1,3}")
SECRET_KEYS = ("api_key",)


@dataclass(frozen=True)
class MailchimpConfig:
    api_key: str
    list_id: str
    base_url: str
    without_consent: str = "skip"
    merge_fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MERGE_FIELDS))
    max_connections: int = 5
    on_delete: str = "archive"

    def secrets(self) -> tuple[str, ...]:
        """The key bare, without its data center, and inside the Basic-auth header."""
        key = self.api_key
        header = base64.b64encode(f"{MAILCHIMP_USER}:{key}".encode()).decode("ascii")
        return (key, key.rsplit("-", 1)[0], header)


def parse_mailchimp(s: Section) -> MailchimpConfig:
    s.only(
        "api_key",
        "base_url",
        "list_id",
        "without_consent",
        "merge_fields",
        "max_connections",
        "on_delete",
    )
    api_key = s.text("api_key")
    data_center = api_key.rsplit("-", 1)[1] if "-" in api_key else ""
    if not DATA_CENTER.fullmatch(data_center):  # never let a key's text choose the host
        raise ConfigError(
            s.key("api_key"),
            "does not end in a data center suffix like -us6 "
            "(copy the whole key from Mailchimp's API keys page)",
        )
    return MailchimpConfig(
        api_key=api_key,
        list_id=s.text("list_id"),
        base_url=_mailchimp_url(s, f"https://{data_center}.api.mailchimp.com/3.0"),
        without_consent=s.choice("without_consent", ("skip", "transactional", "pending"), "skip"),
        merge_fields=_merge_fields(s),
        max_connections=int(s.number("max_connections", 5, low=1, high=10)),
        on_delete=s.choice("on_delete", ("archive", "unsubscribe", "keep"), "archive"),
    )


def _mailchimp_url(s: Section, default: str) -> str:
    parts = s.url("base_url", default, carries="the key")
    if parts.path != "/3.0" or parts.query or parts.fragment:
        raise ConfigError(s.key("base_url"), f"must end in /3.0, like {origin(parts)}/3.0")
    return parts.geturl()


def _merge_fields(s: Section) -> dict[str, str]:
    merge_fields = s.mapping("merge_fields", DEFAULT_MERGE_FIELDS)
    for tag, attribute in merge_fields.items():
        if not re.fullmatch(r"[A-Z0-9_]{1,10}", tag):
            raise ConfigError(s.key(f"merge_fields.{tag}"), "merge tags are 1-10 of A-Z, 0-9, _")
        if attribute not in CONTACT_ATTRIBUTES:
            raise ConfigError(
                s.key(f"merge_fields.{tag}"),
                f"unknown contact attribute {attribute!r}; one of "
                + ", ".join(CONTACT_ATTRIBUTES)
                + did_you_mean(attribute, CONTACT_ATTRIBUTES),
            )
    return merge_fields
