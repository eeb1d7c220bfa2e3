"""sync.yaml → typed, validated config. Every error names the key path and what is wrong; the
local setup checks (URL shapes and https, the Mailchimp data center, region and currency codes)
run here, before any request. The typed getters and ${VAR} secrets live in config_reader."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult

import yaml

from kommo_sync import codes
from kommo_sync.config_reader import (
    SecretLookup,
    Section,
    did_you_mean,
    name_or_id,
    parse_moment,
    read_env_file,
    reason_of,
)
from kommo_sync.errors import ConfigError
from kommo_sync.model import Stage

__all__ = ["Config", "load_config", "parse_config", "parse_moment"]

DEFAULT_TAGS = {
    Stage.NEW: "New Lead",
    Stage.IN_PROGRESS: "In Progress",
    Stage.WON: "Customer",
    Stage.LOST: "Lost Lead",
}
DEFAULT_EVENTS = {
    "created": "Deal Created",
    "stage_changed": "Stage Changed",
    "won": "Deal Won",
    "lost": "Deal Lost",
}
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
KLAVIYO_REVISION = "2026-07-15"
MAILCHIMP_USER = "kommo-sync"  # the Basic-auth user name sent with the Mailchimp key
DATA_CENTER = re.compile(r"[a-z]{2}[0-9]{1,3}")
SECRET_KEYS = (("kommo", "token"), ("mailchimp", "api_key"), ("klaviyo", "api_key"))
READABLE_BY_OTHERS = 0o044


@dataclass(frozen=True)
class KommoConfig:
    base_url: str
    token: str
    consent_field: str | int | None = None
    lead_source_field: str | int | None = None
    pipelines: tuple[str | int, ...] = ()
    requests_per_second: float = 6.3
    overlap_seconds: int = 300


@dataclass(frozen=True)
class MailchimpConfig:
    api_key: str
    list_id: str
    base_url: str
    without_consent: str = "skip"
    merge_fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MERGE_FIELDS))
    max_connections: int = 5


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


@dataclass(frozen=True)
class FeedbackConfig:
    unsubscribes: bool = True
    activity: bool = False
    note_on_open_deals: bool = True
    consent_field_write: bool = False


@dataclass(frozen=True)
class NetworkConfig:
    """How long one HTTP request may take, when a vendor's bulk job is first polled, and how long
    a job is waited for before its records are held back for the next run."""

    timeout_seconds: float = 60.0
    first_poll_seconds: float = 5.0
    job_limit_seconds: float = 600.0


@dataclass(frozen=True)
class Config:
    kommo: KommoConfig
    state: Path
    tags: Mapping[Stage, str] = field(default_factory=lambda: dict(DEFAULT_TAGS))
    mailchimp: MailchimpConfig | None = None
    klaviyo: KlaviyoConfig | None = None
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value in every form it travels in (the Mailchimp key bare, without its
        data center, and inside the Basic-auth header), longest first, so scrubbing masks it whole."""
        values = [self.kommo.token]
        if self.mailchimp:
            key = self.mailchimp.api_key
            values += [
                key,
                key.rsplit("-", 1)[0],
                base64.b64encode(f"{MAILCHIMP_USER}:{key}".encode()).decode("ascii"),
            ]
        if self.klaviyo:
            values.append(self.klaviyo.api_key)
        return tuple(sorted({v for v in values if v}, key=lambda v: (-len(v), v)))


def load_config(
    path: str | Path, environ: Mapping[str, str] | None = None, env_file: str | Path | None = None
) -> Config:
    """Read, interpolate and validate a sync.yaml file; `env_file` (--env-file) replaces the
    config's own `env_file:`."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("--config", f"file {path} not found (create it from sync.yaml.example)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"cannot read {path}: {reason_of(exc)}") from None
    config = parse_config(
        raw,
        os.environ if environ is None else environ,
        base_dir=path.parent,
        env_file=Path(env_file) if env_file else None,
    )
    if _literal_secrets(Section(raw, "", {})) and _readable_by_others(path):
        return replace(
            config, warnings=config.warnings + (_mode_warning(path, "holds a secret and is"),)
        )
    return config


def parse_config(
    raw: Any, environ: Mapping[str, str], base_dir: Path = Path("."), env_file: Path | None = None
) -> Config:
    """Validate the parsed YAML tree into a Config, its ${VAR} references resolved first."""
    values, warnings = _resolve_secrets(raw, environ, base_dir, env_file)
    root = Section(raw, "", values)
    root.only("kommo", "tags", "state", "mailchimp", "klaviyo", "feedback", "network", "env_file")
    destinations = {"mailchimp": root.has("mailchimp"), "klaviyo": root.has("klaviyo")}
    return Config(
        kommo=_kommo(root.section("kommo")),
        state=base_dir / Path(root.text("state", "./kommo-sync.db")),
        tags=_tags(root.section("tags", required=False)),
        mailchimp=_mailchimp(root.section("mailchimp")) if destinations["mailchimp"] else None,
        klaviyo=_klaviyo(root.section("klaviyo")) if destinations["klaviyo"] else None,
        feedback=_feedback(root.section("feedback", required=False)),
        network=_network(root.section("network", required=False)),
        warnings=warnings + _literal_secret_warnings(root),
    )


def _resolve_secrets(
    raw: Any, environ: Mapping[str, str], base_dir: Path, env_file: Path | None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The ${VAR} values, and a warning when the env file they may come from is not private."""
    key = "--env-file"
    if env_file is None and isinstance(raw, dict) and raw.get("env_file"):
        key, env_file = "env_file", base_dir / str(raw["env_file"])
    if env_file is None:
        return SecretLookup(environ, {}, None).resolve(raw), ()
    lookup = SecretLookup(environ, read_env_file(env_file, key), str(env_file))
    warnings = (_mode_warning(env_file, "is"),) if _readable_by_others(env_file) else ()
    return lookup.resolve(raw), warnings


def _readable_by_others(path: Path) -> bool:
    return bool(path.stat().st_mode & READABLE_BY_OTHERS)


def _mode_warning(path: Path, what: str) -> str:
    mode = path.stat().st_mode & 0o777
    return f"warning: {path} {what} readable by group or others (mode {mode:04o}): chmod 600 {path}"


def _literal_secrets(root: Section) -> list[str]:
    """The secret keys whose value is written out in the config rather than a ${VAR}."""
    return [
        f"{section}.{name}"
        for section, name in SECRET_KEYS
        if root.has(section) and root.section(section).is_literal(name)
    ]


def _literal_secret_warnings(root: Section) -> tuple[str, ...]:
    literal = _literal_secrets(root)
    if not literal:
        return ()
    return (
        f"warning: {', '.join(literal)}: the secret is written in the config itself; write ${{VAR}} "
        "there and keep the value in the environment, a VAR_FILE or an env file (mode 0600)",
    )


def _network(s: Section) -> NetworkConfig:
    s.only("timeout_seconds", "first_poll_seconds", "job_limit_seconds")
    return NetworkConfig(
        timeout_seconds=s.number("timeout_seconds", 60, low=0.05, high=600),
        first_poll_seconds=s.number("first_poll_seconds", 5, low=0.01, high=60),
        job_limit_seconds=s.number("job_limit_seconds", 600, low=1, high=86_400),
    )


def _kommo(s: Section) -> KommoConfig:
    s.only(
        "base_url",
        "token",
        "consent_field",
        "lead_source_field",
        "pipelines",
        "requests_per_second",
        "overlap_seconds",
    )
    return KommoConfig(
        base_url=_kommo_url(s),
        token=s.text("token"),
        consent_field=s.name_or_id("consent_field"),
        lead_source_field=s.name_or_id("lead_source_field"),
        pipelines=tuple(s.items("pipelines", name_or_id)),
        requests_per_second=s.number("requests_per_second", 6.3, low=0.1, high=7.0),
        overlap_seconds=int(s.number("overlap_seconds", 300, low=0, high=86400)),
    )


def _kommo_url(s: Section) -> str:
    """The account's address: the client adds /api/v4 itself."""
    parts = s.url("base_url", None, carries="the token")
    if parts.path or parts.query or parts.fragment:
        what = "/api/v4" if parts.path.rstrip("/").endswith("/api/v4") else "a path"
        raise ConfigError(
            s.key("base_url"), f"give the account's address without {what}, like {_origin(parts)}"
        )
    return parts.geturl()


def _origin(parts: SplitResult) -> str:
    return f"{parts.scheme}://{parts.netloc}"


def _tags(s: Section) -> dict[Stage, str]:
    s.only(*[stage.value for stage in Stage])
    tags = {stage: s.text(stage.value, default) for stage, default in DEFAULT_TAGS.items()}
    if len(set(tags.values())) != len(tags):
        raise ConfigError("tags", "each stage needs its own tag name")
    return tags


def _mailchimp(s: Section) -> MailchimpConfig:
    s.only("api_key", "base_url", "list_id", "without_consent", "merge_fields", "max_connections")
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
    )


def _mailchimp_url(s: Section, default: str) -> str:
    parts = s.url("base_url", default, carries="the key")
    if parts.path != "/3.0" or parts.query or parts.fragment:
        raise ConfigError(s.key("base_url"), f"must end in /3.0, like {_origin(parts)}/3.0")
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


def _klaviyo(s: Section) -> KlaviyoConfig:
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
    )


def _klaviyo_url(s: Section) -> str:
    parts = s.url("base_url", "https://a.klaviyo.com", carries="the key")
    if parts.path or parts.query or parts.fragment:
        raise ConfigError(s.key("base_url"), f"give the host without a path, like {_origin(parts)}")
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


def _feedback(s: Section) -> FeedbackConfig:
    s.only("unsubscribes", "activity", "note_on_open_deals", "consent_field_write")
    return FeedbackConfig(
        unsubscribes=s.flag("unsubscribes", True),
        activity=s.flag("activity", False),
        note_on_open_deals=s.flag("note_on_open_deals", True),
        consent_field_write=s.flag("consent_field_write", False),
    )
