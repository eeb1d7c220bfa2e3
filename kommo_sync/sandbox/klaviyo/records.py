"""The records a Klaviyo account holds (profiles, lists, metrics, events, jobs), sort keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kommo_sync.sandbox.klaviyo.filters import LIST_SUPPRESSIONS, SUPPRESSION, normalized
from kommo_sync.sandbox.klaviyo.rules import IDENTIFIERS, sort_text
from kommo_sync.sandbox.network import KlaviyoJobs


@dataclass
class SmsConsent:
    """A profile's SMS marketing consent; `blocked`: the number cannot receive SMS (a carrier
    deactivation), whatever the consent says."""

    consent: str = "NEVER_SUBSCRIBED"
    timestamp: float | None = None
    method: str | None = None
    method_detail: str | None = None
    updated: float | None = None
    blocked: bool = False


@dataclass
class Profile:
    id: str
    created: float
    updated: float
    fields: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    location: dict[str, Any] = field(default_factory=dict)
    consent: str = "NEVER_SUBSCRIBED"
    consent_timestamp: float | None = None
    consent_updated: float | None = None
    method: str | None = None
    method_detail: str | None = None
    custom_method_detail: str | None = None
    double_optin: bool | None = None
    suppressions: list[dict[str, Any]] = field(default_factory=list)
    list_suppressions: list[dict[str, Any]] = field(default_factory=list)
    last_event_date: float | None = None
    sms: SmsConsent = field(default_factory=SmsConsent)

    def filter_values(self, name: str) -> list[Any]:
        if name == "id":
            return [self.id]
        if name in IDENTIFIERS:
            value = self.fields.get(name)
            return [normalized(name, value) if value else None]
        if name in ("created", "updated"):
            return [getattr(self, name)]
        block, _, attribute = name.rpartition(".")
        entries = self.suppressions if block == SUPPRESSION else self.list_suppressions
        return [entry.get(attribute) for entry in entries]


@dataclass
class KlaviyoList:
    id: str
    name: str
    created: float
    updated: float
    opt_in_process: str = "single_opt_in"
    members: dict[str, float] = field(default_factory=dict)  # profile id -> joined_group_at


@dataclass
class Metric:
    id: str
    name: str
    created: float
    integration: dict[str, Any]


@dataclass
class Event:
    id: str
    uuid: str
    metric_id: str
    profile_id: str
    time: float
    properties: dict[str, Any]
    value: float | None
    value_currency: str | None
    unique_id: str | None

    def filter_values(self, name: str) -> list[Any]:
        if name in ("metric_id", "metric"):
            return [self.metric_id]
        if name in ("profile_id", "profile"):
            return [self.profile_id]
        return [self.time]


@dataclass
class ImportJob:
    id: str
    created: float
    rows: list[dict[str, Any]]
    list_ids: list[str]
    timing: KlaviyoJobs  # the account's job timing when the job was created
    completed_at: float | None = None
    profile_ids: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rushed: bool = False  # hurried by jobs_finish_at_once: started and due when created

    @property
    def started(self) -> float:
        return self.created if self.rushed else self.created + self.timing.import_queued

    @property
    def finishes(self) -> float:
        if self.rushed:
            return self.created
        return self.created + self.timing.import_seconds(len(self.rows))

    def status(self, now: float) -> str:
        if self.completed_at is not None:
            return "complete"
        return "processing" if now >= self.started else "queued"


class ProfileStore:
    """Profiles by id plus unique indexes: email (any case), phone_number, external_id."""

    def __init__(self) -> None:
        self.by_id: dict[str, Profile] = {}
        self.index: dict[str, dict[str, str]] = {name: {} for name in IDENTIFIERS}

    def get(self, profile_id: str | None) -> Profile | None:
        return self.by_id.get(profile_id) if profile_id else None

    def find(self, name: str, value: str | None) -> Profile | None:
        if not value:
            return None
        return self.get(self.index[name].get(normalized(name, value)))

    def owners(self, attributes: dict[str, Any]) -> dict[str, Profile]:
        """The existing profile holding each identifier the attributes name, in identifier order."""
        found = {name: self.find(name, attributes.get(name)) for name in IDENTIFIERS}
        return {name: profile for name, profile in found.items() if profile is not None}

    def add(self, profile: Profile) -> None:
        self.by_id[profile.id] = profile

    def set_identifier(self, profile: Profile, name: str, value: str | None) -> bool:
        old = profile.fields.get(name)
        if old == value:
            return False
        if old:
            self.index[name].pop(normalized(name, old), None)
        if value:
            self.index[name][normalized(name, value)] = profile.id
        profile.fields[name] = value
        return True


@dataclass
class Keyed:
    """A record with an explicit sort key, for paging lists that keep insertion order."""

    id: str
    key: str
    item: Any


def list_filter_values(klaviyo_list: KlaviyoList, name: str) -> list[Any]:
    return [getattr(klaviyo_list, name)]


def member_filter_values(profile: Profile, joined: float, name: str) -> list[Any]:
    return [joined] if name == "joined_group_at" else profile.filter_values(name)


def latest(entries: list[dict[str, Any]]) -> float | None:
    return max((entry["timestamp"] for entry in entries), default=None)


PROFILE_SORTS: dict[str, Callable[[Any], str]] = {
    "id": lambda p: p.id,
    "created": lambda p: sort_text(p.created),
    "updated": lambda p: sort_text(p.updated),
    "email": lambda p: normalized("email", p.fields.get("email") or "~"),
    f"{SUPPRESSION}.timestamp": lambda p: sort_text(latest(p.suppressions)),
    f"{LIST_SUPPRESSIONS}.timestamp": lambda p: sort_text(latest(p.list_suppressions)),
}


EVENT_SORTS: dict[str, Callable[[Any], str]] = {
    "datetime": lambda e: sort_text(e.time),
    "timestamp": lambda e: sort_text(e.time),
}


LIST_SORTS: dict[str, Callable[[Any], str]] = {
    "id": lambda item: item.id,
    "name": lambda item: item.name,
    "created": lambda item: sort_text(item.created),
    "updated": lambda item: sort_text(item.updated),
}
