"""sync.yaml → typed, validated config. Every error names the key path and what is wrong."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import yaml

from kommo_sync.errors import ConfigError
from kommo_sync.model import Stage

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_TAGS = {Stage.NEW: "New Lead", Stage.IN_PROGRESS: "In Progress",
                Stage.WON: "Customer", Stage.LOST: "Lost Lead"}
DEFAULT_EVENTS = {"created": "Deal Created", "stage_changed": "Stage Changed",
                  "won": "Deal Won", "lost": "Deal Lost"}
DEFAULT_MERGE_FIELDS = {"PHONE": "phone", "COMPANY": "company", "LEADSOURCE": "lead_source"}
CONTACT_ATTRIBUTES = ("phone", "company", "lead_source", "first_name", "last_name", "email",
                      "stage", "deal_name", "deal_amount", "deal_stage", "pipeline")
KLAVIYO_REVISION = "2026-07-15"


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
    """How long one HTTP request may take, and when a vendor's bulk job is first polled."""

    timeout_seconds: float = 60.0
    first_poll_seconds: float = 5.0


@dataclass(frozen=True)
class Config:
    kommo: KommoConfig
    state: Path
    tags: Mapping[Stage, str] = field(default_factory=lambda: dict(DEFAULT_TAGS))
    mailchimp: MailchimpConfig | None = None
    klaviyo: KlaviyoConfig | None = None
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so output can be checked and scrubbed."""
        values = [self.kommo.token]
        values += [d.api_key for d in (self.mailchimp, self.klaviyo) if d]
        return tuple(v for v in values if v)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a sync.yaml file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("--config", f"file {path} not found (create it from sync.yaml.example)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from None
    return parse_config(raw, os.environ if environ is None else environ, base_dir=path.parent)


def parse_config(raw: Any, environ: Mapping[str, str], base_dir: Path = Path(".")) -> Config:
    """Validate the parsed YAML tree into a Config."""
    root = _Section(raw, "", environ)
    root.only("kommo", "tags", "state", "mailchimp", "klaviyo", "feedback", "network")
    destinations = {"mailchimp": root.has("mailchimp"), "klaviyo": root.has("klaviyo")}
    config = Config(
        kommo=_kommo(root.section("kommo")),
        state=base_dir / Path(root.text("state", "./kommo-sync.db")),
        tags=_tags(root.section("tags", required=False)),
        mailchimp=_mailchimp(root.section("mailchimp")) if destinations["mailchimp"] else None,
        klaviyo=_klaviyo(root.section("klaviyo")) if destinations["klaviyo"] else None,
        feedback=_feedback(root.section("feedback", required=False)),
        network=_network(root.section("network", required=False)),
    )
    return config


def _network(s: "_Section") -> NetworkConfig:
    s.only("timeout_seconds", "first_poll_seconds")
    return NetworkConfig(timeout_seconds=s.number("timeout_seconds", 60, low=0.05, high=600),
                         first_poll_seconds=s.number("first_poll_seconds", 5, low=0.01, high=60))


def _kommo(s: "_Section") -> KommoConfig:
    s.only("base_url", "token", "consent_field", "lead_source_field", "pipelines",
           "requests_per_second", "overlap_seconds")
    return KommoConfig(
        base_url=s.url("base_url"), token=s.text("token"),
        consent_field=s.name_or_id("consent_field"), lead_source_field=s.name_or_id("lead_source_field"),
        pipelines=tuple(s.items("pipelines", lambda key, v: _name_or_id(key, v))),
        requests_per_second=s.number("requests_per_second", 6.3, low=0.1, high=7.0),
        overlap_seconds=int(s.number("overlap_seconds", 300, low=0, high=86400)),
    )


def _tags(s: "_Section") -> dict[Stage, str]:
    s.only(*[stage.value for stage in Stage])
    tags = {stage: s.text(stage.value, default) for stage, default in DEFAULT_TAGS.items()}
    if len(set(tags.values())) != len(tags):
        raise ConfigError("tags", "each stage needs its own tag name")
    return tags


def _mailchimp(s: "_Section") -> MailchimpConfig:
    s.only("api_key", "base_url", "list_id", "without_consent", "merge_fields", "max_connections")
    api_key = s.text("api_key")
    if "-" not in api_key:
        raise ConfigError(s.key("api_key"), "does not end in a data center suffix like -us6")
    merge_fields = s.mapping("merge_fields", DEFAULT_MERGE_FIELDS)
    for tag, attribute in merge_fields.items():
        if not re.fullmatch(r"[A-Z0-9_]{1,10}", tag):
            raise ConfigError(s.key(f"merge_fields.{tag}"), "merge tags are 1-10 of A-Z, 0-9, _")
        if attribute not in CONTACT_ATTRIBUTES:
            raise ConfigError(s.key(f"merge_fields.{tag}"),
                              f"unknown contact attribute {attribute!r}; one of {', '.join(CONTACT_ATTRIBUTES)}")
    dc = api_key.rsplit("-", 1)[1]
    return MailchimpConfig(
        api_key=api_key, list_id=s.text("list_id"),
        base_url=s.url("base_url", f"https://{dc}.api.mailchimp.com/3.0"),
        without_consent=s.choice("without_consent", ("skip", "transactional", "pending"), "skip"),
        merge_fields=merge_fields,
        max_connections=int(s.number("max_connections", 5, low=1, high=10)),
    )


def _klaviyo(s: "_Section") -> KlaviyoConfig:
    s.only("api_key", "base_url", "revision", "list_id", "lists_by_stage", "subscribe_with_consent",
           "events_since", "currency", "phone_region", "events")
    by_stage = s.mapping("lists_by_stage", {})
    for stage in by_stage:
        if stage not in {st.value for st in Stage}:
            raise ConfigError(s.key(f"lists_by_stage.{stage}"), "not a stage (new, in_progress, won, lost)")
    events = s.mapping("events", DEFAULT_EVENTS)
    unknown = set(events) - set(DEFAULT_EVENTS)
    if unknown:
        raise ConfigError(s.key(f"events.{sorted(unknown)[0]}"), "unknown event; one of " + ", ".join(DEFAULT_EVENTS))
    return KlaviyoConfig(
        api_key=s.text("api_key"), list_id=s.text("list_id"),
        base_url=s.url("base_url", "https://a.klaviyo.com"),
        revision=s.text("revision", KLAVIYO_REVISION),
        lists_by_stage={Stage(k): v for k, v in by_stage.items()},
        subscribe_with_consent=s.flag("subscribe_with_consent", True),
        events_since=s.moment("events_since"),
        currency=s.text("currency", "EUR"),
        phone_region=s.optional_text("phone_region"),
        events={**DEFAULT_EVENTS, **events},
    )


def _feedback(s: "_Section") -> FeedbackConfig:
    s.only("unsubscribes", "activity", "note_on_open_deals", "consent_field_write")
    return FeedbackConfig(
        unsubscribes=s.flag("unsubscribes", True), activity=s.flag("activity", False),
        note_on_open_deals=s.flag("note_on_open_deals", True),
        consent_field_write=s.flag("consent_field_write", False),
    )


def parse_moment(text: str) -> datetime:
    """An ISO date or datetime; UTC unless it carries an offset."""
    value = datetime.fromisoformat(text.strip())
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _name_or_id(key: str, value: Any) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise ConfigError(key, "must be a field name or a numeric id")
    return int(value) if isinstance(value, str) and value.isdigit() else value


class _Section:
    """One mapping of the YAML tree, with typed getters that name the full key path on error."""

    def __init__(self, raw: Any, path: str, environ: Mapping[str, str]):
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(path or "(top level)", "must be a mapping of keys to values")
        self.raw, self.path, self.environ = raw, path, environ

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def only(self, *names: str) -> None:
        for name in self.raw:
            if name not in names:
                raise ConfigError(self.key(str(name)), "unknown key (expected one of " + ", ".join(names) + ")")

    def section(self, name: str, required: bool = True) -> "_Section":
        if required and not self.has(name):
            raise ConfigError(self.key(name), "required")
        return _Section(self.raw.get(name), self.key(name), self.environ)

    def _value(self, name: str) -> Any:
        value = self.raw.get(name)
        return self._interpolate(name, value) if isinstance(value, str) else value

    def _interpolate(self, name: str, value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            var = match.group(1)
            if not self.environ.get(var):
                raise ConfigError(self.key(name), f"environment variable {var} is not set")
            return self.environ[var]
        return ENV_REF.sub(substitute, value)

    def text(self, name: str, default: str | None = None) -> str:
        value = self._value(name)
        if value is None or value == "":
            if default is None:
                raise ConfigError(self.key(name), "required")
            return default
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(self.key(name), "must be text")
        return str(value)

    def optional_text(self, name: str) -> str | None:
        return self.text(name) if self.has(name) else None

    def name_or_id(self, name: str) -> str | int | None:
        value = self._value(name)
        return None if value is None else _name_or_id(self.key(name), value)

    def url(self, name: str, default: str | None = None) -> str:
        value = self.text(name, default)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(self.key(name), f"must be a URL like https://mycompany.kommo.com, got {value!r}")
        return value.rstrip("/")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self._value(name)
        if value is None:
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(self.key(name), "must be a number") from None
        if not low <= number <= high:
            raise ConfigError(self.key(name), f"must be between {low:g} and {high:g}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self._value(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), "must be true or false")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in options:
            raise ConfigError(self.key(name), f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def moment(self, name: str) -> datetime | None:
        value = self._value(name)
        if value is None:
            return None
        try:
            return parse_moment(str(value))
        except ValueError:
            raise ConfigError(self.key(name), f"not an ISO date or datetime: {value!r}") from None

    def mapping(self, name: str, default: Mapping[str, str]) -> dict[str, str]:
        value = self.raw.get(name)
        if value is None:
            return dict(default)
        sub = _Section(value, self.key(name), self.environ)
        return {str(k): sub.text(str(k)) for k in sub.raw}

    def items(self, name: str, convert: Callable[[str, Any], Any]) -> list[Any]:
        value = self.raw.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(self.key(name), "must be a list")
        return [convert(f"{self.key(name)}[{i}]", item) for i, item in enumerate(value)]
