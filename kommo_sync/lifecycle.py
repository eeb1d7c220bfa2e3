"""Kommo's deletions and restores, read once per run (before the pull) through the events API,
with their own cursor, whether or not any destination takes deal events.

- a contact deleted leaves the mirror and the queue: it is never planned again (as a New Lead or
  anything else) while Kommo does not hold it;
- a lead deleted leaves the mirror and re-queues its contacts: their stage is recomputed from
  the leads they still have;
- a contact restored is queued, so the pull reads it by id and it is synced as it stands (an exit
  not made yet is called off); a lead restored is read again by id, which re-queues its contacts.
A deleted contact's exit at each destination (`on_delete`) waits in a durable queue until its
outcome is recorded: `make_exits`, right after the read.
Each is applied in event order and is idempotent, so the overlap re-reading an event is harmless.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from kommo_sync.destinations.base import Destination, PersonExit
from kommo_sync.kommo import KommoClient, contact_lead_ids
from kommo_sync.model import LifecycleEvent
from kommo_sync.plan import Change, Outcome
from kommo_sync.pull import Pull
from kommo_sync.state import StateStore
from kommo_sync.tally import Tally
from kommo_sync.window import LIFECYCLE, START, Windows


class LifecycleStage:
    def __init__(
        self, state: StateStore, kommo: KommoClient, pull: Pull, windows: Windows, tally: Tally
    ):
        self.state, self.kommo, self.pull, self.windows, self.tally = (
            state, kommo, pull, windows, tally,
        )  # fmt: skip
        self.window = (0, 0)

    def read(self) -> None:
        """Every deletion and restore in this run's lifecycle window, applied in event order."""
        self.window = self._window()
        for page in self.kommo.lifecycle_events(*self.window):
            self.tally.count(pulled_lifecycle_events=len(page))
            for event in sorted(page, key=lambda e: (e.at, e.id)):
                self._apply(event)

    def make_exits(
        self,
        destinations: list[Destination],
        push: Callable[[Destination, list[Change]], list[Outcome]],
        record: Callable[[str, list[Outcome]], None],
    ) -> None:
        """Each queued deleted contact's exit, through each destination's normal push (`push`
        holds a destination set aside) and recorded as any outcome; a contact leaves the queue
        once no exit of it is held (a transient failure: the next run makes it)."""
        queued = self.state.exits_to_make()
        held: set[int] = set()
        for destination in destinations:
            if queued and isinstance(destination, PersonExit):
                held |= self._exit_at(destination, queued, push, record)
        if queued and not self.state.dry_run:
            with self.state.transaction():
                self.state.clear_exits([cid for cid in queued if cid not in held])

    def _exit_at(
        self,
        destination: PersonExit,
        queued: list[int],
        push: Callable[[Destination, list[Change]], list[Outcome]],
        record: Callable[[str, list[Outcome]], None],
    ) -> set[int]:
        """One destination's exits; the contacts whose exit is held for the next run. Only a
        transient failure holds one (a permanent one is a rejection, as for any change)."""
        name = destination.name
        changes = destination.exit_changes(self.state.pushed(name, queued))
        self.tally.count(**Counter(f"{name}.{change.action}" for change in changes))
        if not changes or self.state.dry_run:
            return set()
        with self.state.transaction():
            optouts = (c.email for c in changes if c.opts_out and c.email)
            self.state.note_own_optouts(name, optouts, self.windows.started)
        assert isinstance(destination, Destination)
        outcomes = push(destination, changes)
        record(name, [o for o in outcomes if o.kind != "transient"])
        held = {o.change.person_id for o in outcomes if o.kind == "transient"}
        self.tally.count(**{f"{name}.exits_held": len(held)})
        return held

    def _window(self) -> tuple[int, int]:
        """History starts at the first run's start (stored once, so a crashed first run loses
        nothing); deletions from before it are for a check against Kommo by id."""
        start = self.state.cursor(LIFECYCLE + START)
        if start is None and self.windows.backfill is None:
            start = self.windows.started
            with self.state.transaction():
                self.state.set_cursor(LIFECYCLE + START, start)
        floor = start or 0
        return self.windows.of(self.state.cursor(LIFECYCLE), floor=floor, initial=floor)

    def _apply(self, event: LifecycleEvent) -> None:
        handler = self._handlers().get((event.type, event.entity))
        if handler is None:
            self.tally.count(**{f"lifecycle_unhandled.{event.type}": 1})
            return
        handler(event.entity_id)
        self.tally.count(**{f"lifecycle.{event.type}": 1})

    def _handlers(self) -> dict[tuple[str, str], Callable[[int], None]]:
        return {
            ("contact_deleted", "contact"): self._contact_deleted,
            ("contact_restored", "contact"): self._contact_restored,
            ("lead_deleted", "lead"): self._lead_deleted,
            ("lead_restored", "lead"): self._lead_restored,
        }

    def _contact_deleted(self, contact_id: int) -> None:
        with self.state.transaction():
            self.state.drop_contacts([contact_id])

    def _contact_restored(self, contact_id: int) -> None:
        """Its leads read again (their links to it are back), then queued: the pull reads queued
        contacts the mirror lacks by id."""
        pages = self.kommo.by_ids("contacts", [contact_id])
        lead_ids = [lead_id for page in pages for raw in page for lead_id in contact_lead_ids(raw)]
        for page in self.kommo.by_ids("leads", lead_ids):
            self.pull.store_leads(page)
        with self.state.transaction():
            self.state.clear_exits([contact_id])
            self.state.mark_dirty([contact_id])

    def _lead_deleted(self, lead_id: int) -> None:
        with self.state.transaction():
            self.state.mark_dirty(self.state.drop_leads([lead_id]))

    def _lead_restored(self, lead_id: int) -> None:
        """Read again by id: storing it queues its contacts."""
        for page in self.kommo.by_ids("leads", [lead_id]):
            self.pull.store_leads(page)
