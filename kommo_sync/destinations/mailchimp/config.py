"""The `mailchimp:` section of sync.yaml: its dataclass, its parser and its secrets."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kommo_sync.config_reader import Section, did_you_mean, origin
from kommo_sync.errors import ConfigError
from kommo_sync.fieldmap import Entry, parse_entries

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
MERGE_TAG = re.compile(r"[A-Z0-9_]{1,10}")
NAME_TAGS = ("FNAME", "LNAME")  # always the person's names (mapping.merge_fields)
KOMMO_TAG_SOURCES = ("contact", "lead")


@dataclass(frozen=True)
class KommoTags:
    """`mailchimp.kommo_tags`: whose Kommo tags become Mailchimp tags, under which prefix, and
    how many distinct ones this tool may manage in the audience."""

    sources: tuple[str, ...] = ("contact",)
    prefix: str = "kommo:"
    max: int = 50


@dataclass(frozen=True)
class MailchimpConfig:
    api_key: str
    list_id: str
    base_url: str
    without_consent: str = "skip"
    merge_fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MERGE_FIELDS))
    max_connections: int = 5
    on_delete: str = "archive"
    fields: tuple[Entry, ...] = ()
    kommo_tags: KommoTags | None = None

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
        "fields",
        "kommo_tags",
    )
    api_key = s.text("api_key")
    data_center = api_key.rsplit("-", 1)[1] if "-" in api_key else ""
    if not DATA_CENTER.fullmatch(data_center):  # never let a key's text choose the host
        raise ConfigError(
            s.key("api_key"),
            "does not end in a data center suffix like -us6 "
            "(copy the whole key from Mailchimp's API keys page)",
        )
    merge_fields = _merge_fields(s)
    return MailchimpConfig(
        api_key=api_key,
        list_id=s.text("list_id"),
        base_url=_mailchimp_url(s, f"https://{data_center}.api.mailchimp.com/3.0"),
        without_consent=s.choice("without_consent", ("skip", "transactional", "pending"), "skip"),
        merge_fields=merge_fields,
        max_connections=int(s.number("max_connections", 5, low=1, high=10)),
        on_delete=s.choice("on_delete", ("archive", "unsubscribe", "keep"), "archive"),
        fields=parse_entries(s, "fields", lambda where, tag: _field_tag(where, tag, merge_fields)),
        kommo_tags=_kommo_tags(s) if s.has("kommo_tags") else None,
    )


def _mailchimp_url(s: Section, default: str) -> str:
    parts = s.url("base_url", default, carries="the key")
    if parts.path != "/3.0" or parts.query or parts.fragment:
        raise ConfigError(s.key("base_url"), f"must end in /3.0, like {origin(parts)}/3.0")
    return parts.geturl()


def _merge_fields(s: Section) -> dict[str, str]:
    merge_fields = s.mapping("merge_fields", DEFAULT_MERGE_FIELDS)
    for tag, attribute in merge_fields.items():
        if not MERGE_TAG.fullmatch(tag):
            raise ConfigError(s.key(f"merge_fields.{tag}"), "merge tags are 1-10 of A-Z, 0-9, _")
        if attribute not in CONTACT_ATTRIBUTES:
            raise ConfigError(
                s.key(f"merge_fields.{tag}"),
                f"unknown contact attribute {attribute!r}; one of "
                + ", ".join(CONTACT_ATTRIBUTES)
                + did_you_mean(attribute, CONTACT_ATTRIBUTES),
            )
    return merge_fields


def _field_tag(where: str, tag: str, merge_fields: Mapping[str, str]) -> str:
    """A `fields:` target: a merge tag of its own (the names and `merge_fields` have theirs)."""
    if not MERGE_TAG.fullmatch(tag):
        raise ConfigError(where, f"{tag!r}: merge tags are 1-10 of A-Z, 0-9, _")
    if tag in NAME_TAGS:
        raise ConfigError(where, f"{tag} always holds the person's name; map to another tag")
    if tag in merge_fields:
        raise ConfigError(where, f"{tag} is also in mailchimp.merge_fields; use one of the two")
    return tag


def _kommo_tags(parent: Section) -> KommoTags:
    s = parent.section("kommo_tags")
    s.only("from", "prefix", "max")
    raw = s.raw.get("from") or ["contact"]
    sources = tuple(raw) if isinstance(raw, list) else (raw,)
    for source in sources:
        if source not in KOMMO_TAG_SOURCES:
            raise ConfigError(
                s.key("from"), f"unknown source {source!r}; a list of contact and/or lead"
            )
    prefix = s.text("prefix", "kommo:")
    if not prefix.strip():
        raise ConfigError(s.key("prefix"), "must not be empty: it marks the tags this tool owns")
    return KommoTags(tuple(dict.fromkeys(sources)), prefix, int(s.number("max", 50, 1, 500)))
