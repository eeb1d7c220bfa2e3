"""Vendor-neutral plan records: what a destination will do for a person (`Change`), what it
left out (`Skip`), what happened (`Outcome`), and the fingerprint that says a desired payload
is unchanged. Pure data: the engine, the state and the report read them; no vendor is named."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kommo_sync.encoding import compact_json

STATUS = "status"
"""The key of a pushed record (`Change.record`) that holds the person's subscription status at
the destination, in `FeedbackKind` words: feedback that only repeats it (an unsubscribe of a
person we pushed as unsubscribed) is not news."""


@dataclass(frozen=True)
class Change:
    """One operation a destination will perform for one person.

    `record` is what the state stores as "last pushed" when the change succeeds; `summary` is
    what the dry-run report shows (fields changed, tags added/removed…). `opts_out`: the change
    unsubscribes the person (consent withdrawn in Kommo); the engine notes it before the push, so
    reading our own unsubscribe back as feedback after a crash never becomes a note.
    """

    destination: str
    person_id: int
    email: str | None
    action: str
    fingerprint: str
    record: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    payload: Any = None
    opts_out: bool = False


@dataclass(frozen=True)
class Outcome:
    change: Change
    ok: bool
    permanent: bool = False
    reason: str = ""
    record_updates: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "done" if self.ok else ("permanent" if self.permanent else "transient")


@dataclass(frozen=True)
class Skip:
    """A person a destination left out on purpose, with the reason (counted, reported)."""

    person_id: int
    reason: str


@dataclass
class Plan:
    """`counts`: what planning noticed beyond changes and skips (a mapped value skipped or cut),
    by full counter name (`mailchimp.fields.truncated`); the engine adds them to the run's."""

    changes: list[Change] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def fingerprint(value: Any) -> str:
    """A stable digest of a desired payload: equal payloads, equal fingerprints."""
    return hashlib.blake2b(_fingerprint_json(value).encode("utf-8"), digest_size=12).hexdigest()


_fingerprint_json = compact_json(sort_keys=True, default=str)
