"""The Destination interface. The engine speaks only this; it names no vendor.

A destination turns people into changes (`plan`, pure: desired state vs. what was last pushed),
applies changes in bulk (`push`), and reports what it learned since its cursor (`read_feedback`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

from kommo_sync.memory import DestinationMemory
from kommo_sync.model import DealEvent, Feedback, Person
from kommo_sync.plan import Change, Outcome, Plan


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
