"""The Destination interface. The engine speaks only this; it names no vendor.

The core every destination has: `plan` (pure: desired state vs. what was last pushed → changes)
and `push` (apply changes in bulk), with `settings` and `target` (what shapes the desired state,
and where it lives) and `prepare` (what the plan needs from the vendor, once per run).

Optional capabilities, which the engine checks for (`isinstance`): a `SuppressionSource` knows
who opted out before this tool was connected; a `FeedbackSource` reports what it learned since
its cursor; a `DealEventSink` takes Kommo's deal events; an `Eraser` erases a person for good
(`forget`); a `PersonExit` says what a person deleted in Kommo leaves behind (`on_delete`).

The contract beyond the signatures: a pushed record (`Change.record`) carries the person's
subscription status under `plan.STATUS` in `FeedbackKind` words, so feedback that only repeats
it is not news; `Feedback.kind` is a `FeedbackKind`; `push` returns one Outcome per change and
raises only for the destination as a whole (see DESIGN "Failures, by rule").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

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


def person_exits(destinations: Iterable[Destination]) -> list[PersonExit]:
    return [d for d in destinations if isinstance(d, PersonExit)]


def event_sinks(destinations: Iterable[Destination]) -> list[DealEventSink]:
    return [d for d in destinations if isinstance(d, DealEventSink)]


def feedback_sources(destinations: Iterable[Destination]) -> list[FeedbackSource]:
    return [d for d in destinations if isinstance(d, FeedbackSource)]
