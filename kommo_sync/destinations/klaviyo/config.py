"""The `klaviyo:` section of sync.yaml: its dataclass, its parser and its secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kommo_sync import codes
from kommo_sync.config_reader import Section, did_you_mean, origin
from kommo_sync.destinations.klaviyo.field_config import FieldMap, parse_field_map
from kommo_sync.errors import ConfigError
from kommo_sync.model import Stage

KLAVIYO_REVISION = "2026-07-15"
DEFAULT_EVENTS = {
    "created": "Deal Created",
    "stage_changed": "Stage Changed",
    "won": "Deal Won",
    "lost": "Deal Lost",
}
SECRET_KEYS = ("api_key",)


@dataclass(frozen=True)
class KlaviyoConfig:
    api_key: str
    list_id: str
    base_url: str = "https://a.klaviyo.com"
    revision: str = KLAVIYO_REVISION
    lists_by_stage: Mapping[Stage, str] = field(default_factory=dict)
    subscribe_with_consent: bool = True
    events_since: datetime | None = None
    currency: str = "EUR"
    phone_region: str | None = None
    events: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENTS))
    on_delete: str = "remove_from_lists"
    field_map: FieldMap = field(default_factory=FieldMap)

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,)


def parse_klaviyo(s: Section) -> KlaviyoConfig:
    s.only(
        "api_key",
        "base_url",
        "revision",
        "list_id",
        "lists_by_stage",
        "subscribe_with_consent",
        "events_since",
        "currency",
        "phone_region",
        "events",
        "on_delete",
        "fields",
        "kommo_tags",
        "sms_consent_field",
        "age_gated",
        "birthday_field",
    )
    return KlaviyoConfig(
        api_key=s.text("api_key"),
        list_id=s.text("list_id"),
        base_url=_klaviyo_url(s),
        revision=s.text("revision", KLAVIYO_REVISION),
        lists_by_stage=_lists_by_stage(s),
        subscribe_with_consent=s.flag("subscribe_with_consent", True),
        events_since=s.moment("events_since"),
        currency=_currency(s),
        phone_region=_phone_region(s),
        events={**DEFAULT_EVENTS, **_events(s)},
        on_delete=s.choice(
            "on_delete", ("remove_from_lists", "suppress", "keep"), "remove_from_lists"
        ),
        field_map=parse_field_map(s),
    )


def _klaviyo_url(s: Section) -> str:
    parts = s.url("base_url", "https://a.klaviyo.com", carries="the key")
    if parts.path or parts.query or parts.fragment:
        raise ConfigError(s.key("base_url"), f"give the host without a path, like {origin(parts)}")
    return parts.geturl()


def _lists_by_stage(s: Section) -> dict[Stage, str]:
    by_stage = s.mapping("lists_by_stage", {})
    stages = [stage.value for stage in Stage]
    for name in by_stage:
        if name not in stages:
            raise ConfigError(
                s.key(f"lists_by_stage.{name}"),
                f"not a stage ({', '.join(stages)})" + did_you_mean(name, stages),
            )
    return {Stage(k): v for k, v in by_stage.items()}


def _events(s: Section) -> dict[str, str]:
    events = s.mapping("events", DEFAULT_EVENTS)
    for name in events:
        if name not in DEFAULT_EVENTS:
            raise ConfigError(
                s.key(f"events.{name}"),
                f"unknown event ({', '.join(DEFAULT_EVENTS)})" + did_you_mean(name, DEFAULT_EVENTS),
            )
    return events


def _currency(s: Section) -> str:
    value = s.text("currency", "EUR")
    if value.upper() in codes.CURRENCIES:
        return value.upper()
    meant = codes.currency_meant(value)
    raise ConfigError(
        s.key("currency"),
        "not an ISO 4217 currency code"
        + (f"; did you mean {meant}?" if meant else " (like EUR, USD, GBP)"),
    )


def _phone_region(s: Section) -> str | None:
    """The region phone numbers without a country code are read in; one phonenumbers knows."""
    value = s.optional_text("phone_region")
    if value is None or value.upper() in codes.REGIONS:
        return value and value.upper()
    meant = codes.region_meant(value)
    raise ConfigError(
        s.key("phone_region"),
        "not an ISO 3166 region code"
        + (f"; did you mean {meant}?" if meant else " (like DE, US, GB)"),
    )
