"""Normalised, vendor-neutral records: what Kommo holds, and what a destination receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from functools import cached_property
from typing import Any

WON_STATUS_ID = 142
LOST_STATUS_ID = 143


class Stage(str, Enum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    WON = "won"
    LOST = "lost"

    @property
    def rank(self) -> int:
        """Precedence: a higher rank wins when several leads or contacts disagree."""
        return _STAGE_RANK[self]


_STAGE_RANK = {Stage.LOST: 0, Stage.NEW: 1, Stage.IN_PROGRESS: 2, Stage.WON: 3}


@dataclass(frozen=True, slots=True)
class Contact:
    """A Kommo contact as the sync needs it. `consent` is None when consent is not tracked."""

    id: int
    updated_at: int
    first_name: str = ""
    last_name: str = ""
    emails: tuple[str, ...] = ()
    phone: str | None = None
    company_id: int | None = None
    lead_source: str | None = None
    consent: bool | None = None
    created_at: int = 0
    responsible_user_id: int | None = None
    tags: tuple[str, ...] = ()
    custom: Mapping[str, Any] = field(default_factory=dict, hash=False)  # field id → raw values

    @property
    def email(self) -> str | None:
        """The address destinations use: the first EMAIL value, trimmed and lower-cased."""
        return normalise_email(self.emails[0]) if self.emails else None


@dataclass(frozen=True, slots=True)
class Lead:
    id: int
    updated_at: int
    name: str = ""
    price: float = 0
    pipeline_id: int = 0
    status_id: int = 0
    created_at: int = 0
    contact_ids: tuple[int, ...] = ()
    main_contact_id: int | None = None
    closed_at: int = 0
    responsible_user_id: int | None = None
    tags: tuple[str, ...] = ()
    loss_reason_id: int | None = None
    custom: Mapping[str, Any] = field(default_factory=dict, hash=False)  # field id → raw values

    @property
    def is_closed(self) -> bool:
        return self.status_id in (WON_STATUS_ID, LOST_STATUS_ID)


@dataclass(frozen=True, slots=True)
class Company:
    """A Kommo company: its name (the COMPANY merge field) and what a field map may read."""

    id: int
    updated_at: int
    name: str = ""
    created_at: int = 0
    responsible_user_id: int | None = None
    tags: tuple[str, ...] = ()
    custom: Mapping[str, Any] = field(default_factory=dict, hash=False)  # field id → raw values


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    pipeline_id: int
    name: str
    sort: int
    type: int = 0


@dataclass(frozen=True)
class Pipeline:
    id: int
    name: str
    statuses: tuple[Status, ...]
    is_unsorted_on: bool = True

    @cached_property
    def first_status_id(self) -> int | None:
        """The entry stage: the unsorted status (type 1), else the lowest-sort open status."""
        incoming = [s for s in self.statuses if s.type == 1]
        if incoming:
            return incoming[0].id
        open_statuses = [s for s in self.statuses if s.id not in (WON_STATUS_ID, LOST_STATUS_ID)]
        return min(open_statuses, key=lambda s: s.sort).id if open_statuses else None


@dataclass(frozen=True)
class Catalog:
    """Pipelines and statuses, keyed by (pipeline id, status id) since 142/143 repeat everywhere."""

    pipelines: dict[int, Pipeline] = field(default_factory=dict)

    @cached_property
    def _statuses(self) -> dict[tuple[int, int], Status]:
        return {(p.id, s.id): s for p in self.pipelines.values() for s in p.statuses}

    def status(self, pipeline_id: int, status_id: int) -> Status | None:
        return self._statuses.get((pipeline_id, status_id))

    def status_name(self, pipeline_id: int, status_id: int) -> str:
        status = self.status(pipeline_id, status_id)
        return status.name if status else f"status {status_id}"

    def pipeline_name(self, pipeline_id: int) -> str:
        pipeline = self.pipelines.get(pipeline_id)
        return pipeline.name if pipeline else f"pipeline {pipeline_id}"

    def is_first_stage(self, pipeline_id: int, status_id: int) -> bool:
        pipeline = self.pipelines.get(pipeline_id)
        return pipeline is not None and pipeline.first_status_id == status_id


@dataclass(frozen=True, slots=True)
class Deal:
    """The deciding lead's facts that travel with a person to the destinations."""

    id: int
    name: str
    amount: float
    status_name: str
    pipeline_name: str


# config attribute names that read the deciding deal, each with the Deal field it reads
_DEAL_ATTRIBUTES = {
    "deal_name": "name",
    "deal_amount": "amount",
    "deal_stage": "status_name",
    "pipeline": "pipeline_name",
}


@dataclass(frozen=True, slots=True)
class Person:
    """One email address toward the destinations: the contact that owns it and its stage.

    Two Kommo contacts with the same email are one person; `contact_ids` lists them all and
    `contact_id` is the one whose stage decided (identity toward the destinations).
    """

    contact_id: int
    email: str | None
    first_name: str
    last_name: str
    phone: str | None
    company: str | None
    lead_source: str | None
    consent: bool | None
    stage: Stage
    deal: Deal | None = None
    contact_ids: tuple[int, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict, hash=False)  # field map → typed

    def attribute(self, name: str) -> object:
        """A value by the attribute names config may refer to (merge field mapping)."""
        deal_field = _DEAL_ATTRIBUTES.get(name)
        if deal_field is not None:
            return getattr(self.deal, deal_field) if self.deal else None
        value = getattr(self, name)
        return value.value if isinstance(value, Stage) else value


def normalise_email(email: str) -> str:
    return email.strip().lower()


class DealEventKind(str, Enum):
    CREATED = "created"
    STAGE_CHANGED = "stage_changed"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class DealEvent:
    """One real transition of a lead, as Kommo's event history recorded it.

    `person` is the lead's main contact as a destination sees it (None when unknown).
    `backfill` marks history replayed on purpose, which must not fire flows.
    """

    id: str
    kind: DealEventKind
    lead_id: int
    at: int
    deal_name: str
    deal_amount: float
    pipeline: str
    stage: str
    previous_stage: str | None
    person: Person | None = None
    backfill: bool = False


@dataclass(frozen=True)
class LeadEvent:
    """One entry of Kommo's lead event history: a lead added, or moved to another status
    (`before`/`after` are `(pipeline_id, status_id)` where Kommo gives them)."""

    id: str
    type: str
    lead_id: int
    at: int
    before: tuple[int, int] | None = None
    after: tuple[int, int] | None = None


@dataclass(frozen=True)
class LifecycleEvent:
    """A contact or lead deleted, restored or merged in Kommo (`type` is Kommo's event type,
    `entity` "contact" or "lead"); Kommo gives no before/after values for these."""

    id: str
    type: str
    entity: str
    entity_id: int
    at: int


class FeedbackKind(StrEnum):
    """What a destination can report about a person; part of the destination contract: the
    first two withdraw email consent (noted on the contact, suppressed, never re-subscribed), an
    SMS opt-out is noted and the destination keeps it from SMS only (email goes on), the last
    two are activity (noted only with `feedback.activity`)."""

    UNSUBSCRIBED = "unsubscribed"
    CLEANED = "cleaned"
    SMS_UNSUBSCRIBED = "sms_unsubscribed"  # SMS only: noted, email goes on
    OPEN = "open"
    CLICK = "click"


@dataclass(frozen=True)
class Feedback:
    """Something a destination learned about a person since its cursor.

    `kind` says what happened (a `FeedbackKind`); `place` names where it happened for the note
    ("Mailchimp list 'Newsletter'"); `detail` is the reason or the campaign; `key` is stable, so
    a re-read of an overlapping window is recognised.
    """

    source: str
    kind: FeedbackKind
    email: str
    at: int
    place: str
    key: str
    detail: str = ""
    url: str = ""
