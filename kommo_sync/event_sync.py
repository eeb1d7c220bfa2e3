"""Deal events: Kommo's lead events since the events cursor, planned and pushed by every
destination that takes them, each event sent once.

An event is marked `pending` before it is sent and `sent` (or `rejected`) after; one a crash left
`pending` is sent again next run through the destination's de-duplicating path."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

from kommo_sync.aside import SetAside
from kommo_sync.clock import Clock
from kommo_sync.deal_events import deal_event, statuses_known
from kommo_sync.destinations.base import DealEventSink, Destination, event_sinks
from kommo_sync.errors import ConfigError, FatalError, RecordRejected, RetryLater
from kommo_sync.forget import without_forgotten
from kommo_sync.kommo import KommoClient
from kommo_sync.masking import scrub
from kommo_sync.model import DealEvent, LeadEvent, Person
from kommo_sync.pipeline import PushPipeline
from kommo_sync.plan import Change, Outcome
from kommo_sync.pull import Pull
from kommo_sync.state import StateStore
from kommo_sync.state.store import EventRow
from kommo_sync.tally import Tally
from kommo_sync.window import EVENTS, EVENTS_START, Windows

EVENT_BATCH = 1000


class EventStage:
    def __init__(
        self,
        state: StateStore,
        kommo: KommoClient,
        pull: Pull,
        windows: Windows,
        tally: Tally,
        aside: SetAside,
        pipeline: PushPipeline,
        clock: Clock,
        dry_run: bool,
        secrets: tuple[str, ...],
        forget_key: str | None = None,
    ):
        self.state, self.kommo, self.pull, self.windows = state, kommo, pull, windows
        self.tally, self.aside, self.pipeline = tally, aside, pipeline
        self.clock, self.dry_run, self.secrets = clock, dry_run, secrets
        self.forget_key = forget_key

    def sync(self, destinations: list[Destination]) -> None:
        """Kommo's lead events since the events cursor, pushed in batches of EVENT_BATCH."""
        targets = [d for d in event_sinks(destinations) if not self.aside.reason(d.name)]
        if not targets:
            return
        for destination in targets:
            self.aside.guarded(destination.name, partial(self._resend_in_flight, destination))
        buffer: list[DealEvent] = []
        for page in self.kommo.lead_events(*self.window(targets)):
            buffer += self._deal_events(page)
            self.tally.count(pulled_events=len(page))
            if len(buffer) >= EVENT_BATCH:
                self._push_batch(targets, buffer)
                buffer = []
        self._push_batch(targets, buffer)

    def window(self, targets: list[DealEventSink]) -> tuple[int, int]:
        """Never below where history starts for this account: the destinations' `events_since`,
        by default the first run's start, stored once so no old flow fires and a crashed first
        run loses nothing."""
        start = self.state.cursor(EVENTS_START)
        if start is None and self.windows.backfill is None:
            starts = [s for s in (d.events_since() for d in targets) if s is not None]
            start = min(starts, default=self.windows.started)
            if not self.dry_run:
                with self.state.transaction():
                    self.state.set_cursor(EVENTS_START, start)
        floor = start or 0
        return self.windows.of(self.state.cursor(EVENTS), floor=floor, initial=floor)

    def _without_forgotten(self, people: dict[int, Person]) -> dict[int, Person]:
        """People `forget` erased send no deal event: an event would make their profile again."""
        kept, _ = without_forgotten(self.state, self.forget_key, list(people.values()))
        still = {id(person) for person in kept}
        return {cid: person for cid, person in people.items() if id(person) in still}

    def _push_batch(self, targets: list[DealEventSink], events: list[DealEvent]) -> None:
        if events:
            for destination in targets:
                if not self.aside.reason(destination.name):
                    self._push(destination, events)

    def _deal_events(self, page: list[LeadEvent]) -> list[DealEvent]:
        leads = self.pull.leads({e.lead_id for e in page if e.lead_id})
        main_contacts = {lead.main_contact_id for lead in leads.values() if lead.main_contact_id}
        everyone = self.pull.people_by_contact(main_contacts)
        people = self._without_forgotten(everyone)
        forgotten = everyone.keys() - people.keys()
        events = []
        for raw in sorted(page, key=lambda e: (e.at, e.id)):
            lead = leads.get(raw.lead_id)
            if lead is None or not self.pull.selected(lead):
                continue
            if not statuses_known(raw, lead, self.pull.catalog):
                self.tally.count(events_held_unknown_status=1)
                continue
            if lead.main_contact_id in forgotten:
                self.tally.count(events_skipped_forgotten=1)
                continue
            person = people.get(lead.main_contact_id or 0)
            backfill = self.windows.backfill is not None
            event = deal_event(raw, lead, self.pull.catalog, person, backfill=backfill)
            if event is not None:
                events.append(event)
        return events

    def _push(self, destination: DealEventSink, events: list[DealEvent]) -> None:
        name = destination.name
        known = self.state.event_statuses(name, [e.id for e in events])
        plan = destination.plan_events([e for e in events if e.id not in known])
        skipped = Counter(f"{name}.events_skipped.{skip.reason}" for skip in plan.skipped)
        self.tally.count(**skipped)
        already = len(events) - len(plan.changes) - len(plan.skipped)
        self.tally.count(**{f"{name}.events_already_sent": already})
        for change in plan.changes:
            self.tally.count(**{f"{name}.{change.action}": 1})
        self.tally.keep("changes", plan.changes)
        if self.dry_run or not plan.changes:
            return
        now = int(self.clock.now())
        with self.state.transaction():
            self.state.mark_events(name, "pending", now, map(event_row, plan.changes))
        self.pipeline.submit(
            lambda: self._send(destination, plan.changes),
            lambda outcomes: self._record(destination, outcomes),
        )

    def _send(self, destination: DealEventSink, changes: list[Change]) -> list[Outcome]:
        """On a worker: events stay `pending` (re-sent through the de-duplicating path next run)
        when their destination fails."""
        if self.aside.reason(destination.name) is None:
            try:
                return destination.push_events(changes)
            except RetryLater:
                return []
            except (FatalError, RecordRejected, ConfigError) as exc:
                by_config = isinstance(exc, ConfigError)
                self.aside.add(destination.name, str(exc), by_config=by_config)
        return []

    def _resend_in_flight(self, destination: DealEventSink) -> None:
        """Events whose outcome a crash left unknown go again, through the de-duplicating path."""
        rows = self.state.events_in_flight(destination.name)
        changes = [
            Change(destination.name, pid, email, action, "", {"event_id": eid}, {}, payload)
            for eid, pid, email, action, payload in rows
        ]
        self.tally.count(**{f"{destination.name}.events_in_flight": len(changes)})
        if changes and not self.dry_run:
            outcomes = destination.push_events(changes, outcome_unknown=True)
            self._record(destination, outcomes)

    def _record(self, destination: DealEventSink, outcomes: list[Outcome]) -> None:
        name = destination.name
        reason = self.aside.reason(name)
        if reason:
            self.aside.announce(name, reason)
        now = int(self.clock.now())
        sent = [o for o in outcomes if o.ok]
        refused = [o for o in outcomes if not o.ok and o.permanent]
        with self.state.transaction():
            self.state.mark_events(name, "sent", now, (event_row(o.change) for o in sent))
            rejected = (event_row(o.change, scrub(o.reason, self.secrets)) for o in refused)
            self.state.mark_events(name, "rejected", now, rejected)
        self.tally.count(**{f"{name}.events_sent": len(sent)})
        for outcome in outcomes:
            if not outcome.ok:
                self._reject(name, outcome)

    def _reject(self, name: str, outcome: Outcome) -> None:
        self.tally.count(rejected=1, **{f"{name}.events_rejected.{outcome.kind}": 1})
        change = outcome.change
        reason = f"event {change.record.get('event_id')}: {outcome.reason}"
        self.tally.keep("rejections", [rejection_row(name, outcome, reason)])


def rejection_row(name: str, outcome: Outcome, reason: str) -> dict[str, Any]:
    change = outcome.change
    return {
        "destination": name,
        "contact_id": change.person_id,
        "email": change.email,
        "kind": outcome.kind,
        "reason": reason,
    }


def event_row(change: Change, reason: str | None = None) -> EventRow:
    record = change.record
    return (
        record["event_id"],
        change.person_id,
        change.email,
        change.action,
        change.payload,
        reason,
    )
