"""What a Mailchimp account holds: audiences, members, segments (tags), campaigns, batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kommo_sync.sandbox.mailchimp.rules import subscriber_hash


@dataclass
class Member:
    email_address: str
    status: str
    unique_email_id: str
    contact_id: str
    web_id: int
    last_changed: float
    timestamp_opt: float | None
    merge_fields: dict[str, Any] = field(default_factory=dict)
    tags: dict[int, float] = field(default_factory=dict)  # tag id -> date added
    unsubscribe_reason: str = ""
    email_type: str = "html"
    language: str = ""
    vip: bool = False
    archived_from: str = ""  # the status an archived member had; a PUT brings it back

    @property
    def id(self) -> str:
        return subscriber_hash(self.email_address)


@dataclass
class Segment:
    id: int
    name: str
    created_at: float
    updated_at: float
    member_ids: set[str] = field(default_factory=set)


@dataclass
class Audience:
    id: str
    name: str
    web_id: int
    created_at: float
    members: dict[str, Member] = field(default_factory=dict)
    merge_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: dict[int, Segment] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)  # casefolded tag name -> id
    forgotten: set[str] = field(default_factory=set)


@dataclass
class Campaign:
    id: str
    title: str
    list_id: str
    web_id: int
    create_time: float
    send_time: float
    activity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # email -> events


@dataclass
class Batch:
    id: str
    operations: list[dict[str, Any]]
    submitted_at: float
    starts_at: float
    finishes_at: float
    results: list[dict[str, Any]] | None = None
    archive: bytes = b""

    def progress(self, now: float) -> tuple[str, int]:
        """(status, finished_operations) at `now`; batches run one after another."""
        total = len(self.operations)
        if self.results is not None:
            return "finished", len(self.results)
        if now < self.starts_at:
            return "pending", 0
        share = (now - self.starts_at) / max(self.finishes_at - self.starts_at, 1e-9)
        return "started", min(total, int(total * share))

    @property
    def errored(self) -> int:
        """Operations whose status code is not 200 (the docs: 'returned a non-200 response')."""
        return sum(1 for result in self.results or [] if result["status_code"] != 200)
