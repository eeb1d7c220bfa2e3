"""The Destination interface. The engine speaks only this; it names no vendor.

A destination turns people into changes (`plan`, pure: desired state vs. what was last pushed),
applies changes in bulk (`push`), and reports what it learned since its cursor (`read_feedback`).
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kommo_sync.encoding import compact_json
from kommo_sync.model import DealEvent, Person


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
class Feedback:
    """Something a destination learned about a person since its cursor.

    `kind` is unsubscribed | cleaned | open | click; `place` names where it happened for the note
    ("Mailchimp list 'Newsletter'"); `detail` is the reason or the campaign; `key` is stable, so
    a re-read of an overlapping window is recognised.
    """

    source: str
    kind: str
    email: str
    at: int
    place: str
    key: str
    detail: str = ""
    url: str = ""


@dataclass(frozen=True)
class Skip:
    """A person a destination left out on purpose, with the reason (counted, reported)."""

    person_id: int
    reason: str


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def fingerprint(value: Any) -> str:
    """A stable digest of a desired payload: equal payloads, equal fingerprints."""
    return hashlib.blake2b(_fingerprint_json(value).encode("utf-8"), digest_size=12).hexdigest()


_fingerprint_json = compact_json(sort_keys=True, default=str)


class Destination(ABC):
    """A marketing platform kommo-sync keeps in step with Kommo."""

    name: str = "destination"
    wants_deal_events: bool = False

    def settings(self) -> Any:
        """The config that shapes the desired state; when it changes, every person is re-planned."""
        return None

    def target(self) -> str:
        """Where the data lives (an audience, an account); when it changes, pushed state is void."""
        return ""

    def prepare(self, memory: DestinationMemory, dry_run: bool) -> None:
        """Load what the plan needs from the vendor once per run (e.g. merge fields)."""

    @abstractmethod
    def plan(
        self, people: list[Person], pushed: dict[int, dict[str, Any]], suppressed: set[str]
    ) -> Plan:
        """Desired state vs. last pushed → changes. Pure: no I/O."""

    @abstractmethod
    def push(self, changes: list[Change]) -> list[Outcome]:
        """Apply changes in bulk; one Outcome per change, never an exception for one bad record."""

    def known_suppressions(self) -> Iterator[str]:
        """Emails the destination must never subscribe, read once when it is first connected
        (later changes arrive through `read_feedback`); none by default."""
        return iter(())

    def events_since(self) -> int | None:
        """Where deal-event history starts for a new account (None: the first run's start)."""
        return None

    def plan_events(self, events: list[DealEvent]) -> Plan:
        """Deal events → changes (pure). Only destinations with `wants_deal_events` get called."""
        return Plan()

    def push_events(self, changes: list[Change], outcome_unknown: bool = False) -> list[Outcome]:
        """Send event changes; `outcome_unknown` ones were maybe sent before a crash and must go
        through a path that de-duplicates on the event's unique id."""
        return []

    def read_feedback(self, since: int, until: int, activity: bool) -> Iterator[Feedback]:
        """Unsubscribes (and, with `activity`, opens and clicks) in (since, until]; none by default."""
        return iter(())


class DestinationMemory:
    """A destination's own small key/value memory in the state file (managed tags, ids…).

    Pushes run on a worker thread that must not touch the state file, so writes are buffered
    here and the engine flushes them from the main thread when it records the push.
    """

    def __init__(self, state: Any, destination: str):
        self.state, self.destination = state, destination
        self.pending: dict[str, Any] = {}
        self.lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            if key in self.pending:
                return self.pending[key]
        return self.state.meta(self.destination, key, default)

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            self.pending[key] = value

    def flush(self) -> None:
        """Write buffered values; call on the thread that owns the state."""
        with self.lock:
            pending, self.pending = self.pending, {}
        if pending:
            with self.state.transaction():
                for key, value in pending.items():
                    self.state.set_meta(self.destination, key, value)
