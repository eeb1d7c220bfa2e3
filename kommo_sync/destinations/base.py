"""The Destination interface. The engine speaks only this; it names no vendor.

The core every destination has: `plan` (pure: desired state vs. what was last pushed → changes)
and `push` (apply changes in bulk), with `settings` and `target` (what shapes the desired state,
and where it lives) and `prepare` (what the plan needs from the vendor, once per run).

Optional capabilities, which the engine checks for (`isinstance`): a `SuppressionSource` knows
who opted out before this tool was connected; a `FeedbackSource` reports what it learned since
its cursor; a `DealEventSink` takes Kommo's deal events; an `Eraser` erases a person for good
(`forget`); a `PersonExit` says what a person deleted in Kommo leaves behind (`on_delete`); a
`Reconcilable` reads what it holds for the people pushed there and reports the drift (`reconcile`).

The contract beyond the signatures: a pushed record (`Change.record`) carries the person's
subscription status under `plan.STATUS` in `FeedbackKind` words, so feedback that only repeats
it is not news; `Feedback.kind` is a `FeedbackKind`; `push` returns one Outcome per change and
raises only for the destination as a whole (see DESIGN "Failures, by rule").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from kommo_sync.fieldmap import Entry, Resolved
from kommo_sync.memory import DestinationMemory
from kommo_sync.model import DealEvent, Feedback, Person
from kommo_sync.plan import Change, Outcome, Plan


class Destination(ABC):
    """A marketing platform kommo-sync keeps in step with Kommo."""

    name: str = "destination"

    def settings(self) -> Any:
        """The config that shapes the desired state; when it changes, every person is re-planned."""
        return None

    def target(self) -> str:
        """Where the data lives (an audience, an account); when it changes, pushed state is void."""
        return ""

    def field_entries(self) -> tuple[Entry, ...]:
        """The section's field map (`fields:`), resolved by the engine against Kommo's fields."""
        return ()

    def take_fields(self, resolved: tuple[Resolved, ...]) -> None:  # noqa: B027 (optional)
        """The field map resolved (each entry's Kommo field and type), before `prepare`; people
        then carry each entry's value under its source key (`Person.values`)."""

    def prepare(self, memory: DestinationMemory, dry_run: bool) -> None:  # noqa: B027 (optional)
        """Load what the plan needs from the vendor once per run (e.g. merge fields)."""

    @abstractmethod
    def plan(
        self, people: list[Person], pushed: dict[int, dict[str, Any]], suppressed: set[str]
    ) -> Plan:
        """Desired state vs. last pushed → changes. Pure: no I/O."""

    @abstractmethod
    def push(self, changes: list[Change]) -> list[Outcome]:
        """Apply changes in bulk; one Outcome per change, never an exception for one bad record."""


@runtime_checkable
class SuppressionSource(Protocol):
    name: str

    def known_suppressions(self) -> Iterator[str]:
        """Emails the destination must never subscribe, read once when it is first connected
        (later changes arrive as feedback)."""
        ...


@runtime_checkable
class FeedbackSource(Protocol):
    name: str

    def read_feedback(self, since: int, until: int, activity: bool) -> Iterator[Feedback]:
        """Unsubscribes (and, with `activity`, opens and clicks) in (since, until]."""
        ...


@runtime_checkable
class DealEventSink(Protocol):
    name: str

    def events_since(self) -> int | None:
        """Where deal-event history starts for a new account (None: the first run's start)."""
        ...

    def plan_events(self, events: list[DealEvent]) -> Plan:
        """Deal events → changes (pure)."""
        ...

    def push_events(self, changes: list[Change], outcome_unknown: bool = False) -> list[Outcome]:
        """Send event changes; `outcome_unknown` ones were maybe sent before a crash and must go
        through a path that de-duplicates on the event's unique id."""
        ...


@runtime_checkable
class Eraser(Protocol):
    name: str

    def erase(self, emails: list[str], phones: list[str]) -> str:
        """Erase the people with these emails (and, where the vendor keys profiles by phone,
        phones) for good; what was done, in words without the addresses. A person the vendor
        never had is done. Raises our error kinds when the vendor did not confirm."""
        ...


@runtime_checkable
class PersonExit(Protocol):
    name: str

    def exit_changes(self, pushed: dict[int, dict[str, Any]]) -> list[Change]:
        """The exit (`on_delete`) of each deleted person, from what was last pushed for them, as
        changes its `push` makes; none for a person whose exit is made already, or with `keep`.
        The record of each says what the destination holds after it (archived, unsubscribed)."""
        ...

    def tombstone(self, record: dict[str, Any]) -> dict[str, Any]:
        """What is kept of a pushed record once its contact has left Kommo and its exit is
        made: only what a restore needs to stay safe (the address the destination knows the
        person by, the last status, the fingerprint, the lists joined), no names or fields."""
        ...


class DriftKind(StrEnum):
    """How what a destination holds differs from what this tool pushed there."""

    MISSING = "missing"  # not at the destination at all
    ARCHIVED = "archived"  # archived there by hand
    UNSUBSCRIBED = "unsubscribed"  # opted out (or cleaned) there, unknown to the state
    WRONG_TAG = "wrong_tag"  # the managed stage tag is missing, or another managed tag is on
    WRONG_FIELD = "wrong_field"  # a field holds another value than the one pushed
    NOT_IN_LIST = "not_in_list"  # out of a managed list it was pushed into


@dataclass(frozen=True)
class Drift:
    """One difference for one person, with a short detail (the fields, tags or list named).
    `status`: what the person's pushed record says from now on (under `plan.STATUS`, in the
    destination's words: a member gone), so the plan adds them back by its own rules."""

    person_id: int
    kind: DriftKind
    detail: str = ""
    status: str | None = None


@dataclass
class DriftFound:
    """What a reconcile read found: the drift, the opt-outs among it as feedback (suppressed at
    once, like a feedback read's), and how many requests the read made."""

    drift: list[Drift] = field(default_factory=list)
    unsubscribes: list[Feedback] = field(default_factory=list)
    requests: int = 0


@runtime_checkable
class Reconcilable(Protocol):
    name: str

    def reconcile_cost(self, people: int) -> int:
        """The requests a `read_drift` of this many pushed people is expected to make."""
        ...

    def read_drift(self, pushed: dict[int, dict[str, Any]]) -> DriftFound:
        """Read what the destination holds for these people (their last pushed records, by
        person id) through its paged reads, and compare: the drift per person. Reads only."""
        ...


def reconcilables(destinations: Iterable[Destination]) -> list[Reconcilable]:
    return [d for d in destinations if isinstance(d, Reconcilable)]


def person_exits(destinations: Iterable[Destination]) -> list[PersonExit]:
    return [d for d in destinations if isinstance(d, PersonExit)]


def event_sinks(destinations: Iterable[Destination]) -> list[DealEventSink]:
    return [d for d in destinations if isinstance(d, DealEventSink)]


def feedback_sources(destinations: Iterable[Destination]) -> list[FeedbackSource]:
    return [d for d in destinations if isinstance(d, FeedbackSource)]
