"""Kommo's deletions, restores and merges, read once per run (before the pull) through the events
API, with their own cursor, whether or not any destination takes deal events.

- a contact deleted leaves the mirror and the queue: it is never planned again (as a New Lead or
  anything else) while Kommo does not hold it; when another card of the same email stays, the
  person is not leaving: what was pushed moves to the card that now stands for them, and the
  group is planned again;
- a merge names one of the two contacts, not which survived: the named contact and every
  mirrored one sharing an email with it are read again by id, and those Kommo no longer returns
  leave as deleted ones (so a loser with the survivor's email hands its member and profile over,
  and a loser with an email of its own makes its exit);
- a lead deleted leaves the mirror and re-queues its contacts: their stage is recomputed from
  the leads they still have;
- a contact restored is queued, so the pull reads it by id and it is synced as it stands (an exit
  not made yet is called off); a lead restored is read again by id, which re-queues its contacts.
A deleted contact's exit at each destination (`on_delete`) waits in a durable queue until its
outcome is recorded: `make_exits`, right after the read. `reconcile --kommo` also checks every
mirrored contact against Kommo by id, for deletions the events never showed.
Each is applied in event order and is idempotent, so the overlap re-reading an event is harmless.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from kommo_sync.destinations.base import Destination, PersonExit, person_exits
from kommo_sync.kommo import KommoClient
from kommo_sync.kommo_records import contact_emails, contact_lead_ids
from kommo_sync.model import LifecycleEvent
from kommo_sync.plan import Change, Outcome
from kommo_sync.pull import Pull
from kommo_sync.state import StateStore
from kommo_sync.tally import Tally
from kommo_sync.window import LIFECYCLE, START, Windows


class LifecycleStage:
    def __init__(
        self,
        state: StateStore,
        kommo: KommoClient,
        pull: Pull,
        windows: Windows,
        tally: Tally,
        check_mirror: bool = False,
    ):
        self.state, self.kommo, self.pull, self.windows, self.tally = (
            state, kommo, pull, windows, tally,
        )  # fmt: skip
        self.check_mirror = check_mirror
        self.window = (0, 0)

    def read(self) -> None:
        """Every deletion, restore and merge in this run's lifecycle window, applied in event
        order; then, with `check_mirror`, the mirror checked against Kommo."""
        self.window = self._window()
        for page in self.kommo.lifecycle_events(*self.window):
            self.tally.count(pulled_lifecycle_events=len(page))
            for event in sorted(page, key=lambda e: (e.at, e.id)):
                self._apply(event)
        if self.check_mirror:
            self._check_mirror()

    def _check_mirror(self) -> None:
        """Every mirrored contact read by id (250 a request); those Kommo no longer returns were
        deleted while the events did not show it (before the first run, or while the tool was
        off) and leave as deleted ones."""
        mirrored = self.state.mirrored_contact_ids()
        held = {raw["id"] for page in self.kommo.by_ids("contacts", mirrored) for raw in page}
        gone = [cid for cid in mirrored if cid not in held]
        self.tally.count(mirror_checked=len(mirrored), gone_from_kommo=len(gone))
        self._leave(gone)

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
        if held:
            self.tally.warn(
                f"{len(held)} deleted contacts still have an exit to make (on_delete): a "
                "destination failed or was set aside; the next run makes it"
            )
        if queued and not self.state.dry_run:
            self._bury([cid for cid in queued if cid not in held], person_exits(destinations))

    def _bury(self, departed: list[int], destinations: list[PersonExit]) -> None:
        """Their exits are made: they leave the queue, and what was pushed for them shrinks to
        tombstones (what a restore needs to stay safe, no names or fields)."""
        with self.state.transaction():
            for destination in destinations:
                pushed = self.state.pushed(destination.name, departed)
                rows = [
                    (pid, str(record.get("fingerprint") or ""), destination.tombstone(record))
                    for pid, record in pushed.items()
                ]
                self.state.record_pushed(destination.name, rows)
            self.state.clear_exits(departed)

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
            ("entity_merged", "contact"): self._contacts_merged,
        }

    def _contact_deleted(self, contact_id: int) -> None:
        self._leave([contact_id])

    def _leave(self, contact_ids: list[int]) -> None:
        """Contacts Kommo no longer holds leave the mirror and wait for their exits, except at
        a person who keeps another card with the same email: what was pushed for them moves to
        the card that now stands for the person (the group's lowest id, its identity), so no
        exit touches a member or profile someone still owns, and the group is planned again."""
        leaving = set(contact_ids)
        emails = [(cid, c.email) for cid, c in self.state.contacts(leaving).items() if c.email]
        twins = {
            email: [cid for cid in ids if cid not in leaving]
            for email, ids in self.state.contact_ids_by_email(e for _, e in emails).items()
        }
        moves = [(cid, twins[email][0]) for cid, email in emails if twins.get(email)]
        with self.state.transaction():
            moved = self.state.move_pushed(moves)
            self.state.drop_contacts(contact_ids)
            self.state.mark_dirty(cid for ids in twins.values() for cid in ids)
        self.tally.count(handed_over=moved)

    def _contacts_merged(self, contact_id: int) -> None:
        """The named contact and every mirrored contact sharing an email with it (before or
        after the merge) read again by id; those Kommo returns are stored with their leads and
        planned again, the rest merged away and leave (the event may name either side)."""
        before = self.state.contacts([contact_id]).get(contact_id)
        emails = {before.email} if before and before.email else set()
        for raw in self._read_contacts([contact_id]).values():
            emails |= contact_emails(raw)
        sharing = {cid for ids in self.state.contact_ids_by_email(emails).values() for cid in ids}
        candidates = sharing | {contact_id}
        held = self._read_contacts(candidates)
        self._leave(sorted(candidates - set(held)))
        with self.state.transaction():
            self.state.mark_dirty(held)

    def _read_contacts(self, contact_ids: set[int] | list[int]) -> dict[int, dict[str, Any]]:
        """Contacts by id, stored with their leads (their links to them may have moved)."""
        held: dict[int, dict[str, Any]] = {}
        for page in self.kommo.by_ids("contacts", contact_ids):
            held.update((raw["id"], raw) for raw in page)
            self.pull.store_contacts(page, count_as="contacts_by_id")
        lead_ids = [lead_id for raw in held.values() for lead_id in contact_lead_ids(raw)]
        for page in self.kommo.by_ids("leads", lead_ids):
            self.pull.store_leads(page)
        return held

    def _contact_restored(self, contact_id: int) -> None:
        """Read again by id with its leads (their links to it are back), and planned."""
        self._read_contacts([contact_id])
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
