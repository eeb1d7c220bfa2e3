"""One run: lock → feedback read → pull → plan → push → record → notes.

The engine knows no vendor: Kommo comes in through KommoClient, destinations through the
Destination interface. Pages stream into the state's mirror; changed contacts wait in a durable
queue until every destination's outcome for them is recorded, and only then does the cursor move.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kommo_sync import logs
from kommo_sync.clock import Clock
from kommo_sync.config import Config
from kommo_sync.deal_events import deal_event, lead_status
from kommo_sync.destinations.base import Destination
from kommo_sync.errors import ConfigError, FatalError, Interrupted, RecordRejected, RetryLater
from kommo_sync.exits import exit_code_of
from kommo_sync.feedback import FeedbackStage, feedback_cursor
from kommo_sync.kommo import FieldMap, KommoClient, parse_contact, parse_lead, resolve_fields
from kommo_sync.masking import scrub
from kommo_sync.memory import DestinationMemory
from kommo_sync.mirror import mirror_contacts, mirror_leads, people_of
from kommo_sync.model import Catalog, DealEvent, Lead, Person
from kommo_sync.pipeline import PushPipeline, read_ahead
from kommo_sync.pipelines import pipeline_errors
from kommo_sync.plan import Change, Outcome, Plan, fingerprint
from kommo_sync.results import PersonRow, RunOptions, RunResult
from kommo_sync.state import FileLock, State

log = logging.getLogger("kommo_sync.engine")

CONTACTS_CURSOR = "kommo.updated_at"
EVENTS_CURSOR = "kommo.events"
EVENTS_START = "kommo.events.start"
EVENT_BATCH = 1000
BATCH_SIZE = 5_000
FINAL_BATCH_SIZE = 1_250
READ_AHEAD_PAGES = 40  # pages of 250: two batches of contacts
COMPANY_PAGE = 250


Progress = Callable[[str, Counter[str]], None]


class SetAside:
    """Destinations that failed for this run, with the reason. Push workers read it (a batch
    for a destination already set aside is not sent), so it is guarded by a lock."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}
        self.by_config: set[str] = set()
        self.lock = threading.Lock()

    def add(self, name: str, reason: str, by_config: bool = False) -> None:
        with self.lock:
            if name not in self.reasons and by_config:
                self.by_config.add(name)
            self.reasons.setdefault(name, reason)

    def reason(self, name: str) -> str | None:
        with self.lock:
            return self.reasons.get(name)


class Engine:
    def __init__(
        self,
        config: Config,
        kommo: KommoClient,
        destinations: list[Destination],
        clock: Clock | None = None,
        progress: Progress | None = None,
    ):
        self.config, self.kommo, self.destinations = config, kommo, destinations
        self.clock = clock or Clock()
        self.progress = progress or (lambda stage, counts: None)

    def run(self, options: RunOptions) -> RunResult:
        lock = FileLock.beside(self.config.state)
        lock.acquire(self.clock.now())
        try:
            with State.open(self.config.state, dry_run=options.dry_run) as state:
                return _Run(self, state, options).execute()
        finally:
            lock.release()


class _Run:
    """The work of one run, with its state, window, catalog and counters."""

    def __init__(self, engine: Engine, state: State, options: RunOptions):
        self.engine, self.state, self.options = engine, state, options
        self.config, self.kommo, self.clock = engine.config, engine.kommo, engine.clock
        self.started = int(self.clock.now())
        self.catalog = Catalog()
        self.fields = FieldMap()
        self.result = RunResult(
            None, options.mode, options.dry_run, (0, 0), started_at=self.started
        )
        self.phase = "prepare"
        self.feedback = FeedbackStage(self)
        self.pipeline = PushPipeline(
            overlap=not options.dry_run, depth=10, workers=8, check=self.clock.check
        )
        self.memories = {d.name: DestinationMemory(state, d.name) for d in engine.destinations}
        self.watermark = -1
        self.aside = SetAside()
        self.held_unknown: set[int] = set()
        self.companies_seen: set[int] = set()
        self.companies_missing: set[int] = set()

    def execute(self) -> RunResult:
        self.result.run_id = self.state.start_run(self.options.mode, self.started)
        logs.bind(run_id=self.result.run_id, phase=self.phase)
        status = "failed"
        failure: BaseException | None = None  # what ended the run, if anything did
        try:
            self._prepare()
            self.result.window = self._window()
            self.enter("feedback")
            self.feedback.read()
            self._flush_memories()
            with self.state.transaction():
                self.state.requeue_transient_rejections()
            self.enter("pull")
            self._pull(*self.result.window)
            self.enter("push")
            self._process_ready(final=True)
            self.enter("events")
            self._sync_events()
            self.pipeline.close()
            self.enter("notes")
            self.feedback.write_notes()
            self._flush_memories()
            self._advance_cursor()
            status = "done" if not self.result.rejected else "done_with_rejections"
            if self.aside.reasons:
                status = "destination_failed"
            if self.held_unknown:
                self.result.warnings.append(
                    f"{len(self.held_unknown)} contacts wait for a pipeline or status "
                    "missing from Kommo's catalog; they are planned once it is there"
                )
        except BaseException as exc:
            failure = exc
            status = (
                "interrupted" if isinstance(exc, (Interrupted, KeyboardInterrupt)) else "failed"
            )
            raise
        finally:
            self._report_destinations()
            self.pipeline.abandon()
            self.result.finished_at = int(self.clock.now())
            self.state.finish_run(
                self.result.run_id,
                status,
                self.result.finished_at,
                dict(self.result.counts),
                *self._ending(failure),
            )
        return self.result

    def _ending(self, failure: BaseException | None) -> tuple[int, str | None]:
        """The exit code and error text the run's row keeps (secrets masked): the failure that
        ended the run, else why destinations were set aside."""
        if failure is not None:
            text = str(failure) or type(failure).__name__
            return exit_code_of(failure), scrub(text, self.config.secrets)
        reasons = "; ".join(f"{name}: {reason}" for name, reason in self.aside.reasons.items())
        return self.result.exit_code, scrub(reasons, self.config.secrets) or None

    def _prepare(self) -> None:
        self.catalog = self.kommo.catalog()
        errors = pipeline_errors(self.config.kommo.pipelines, self.catalog)
        if errors:
            raise errors[0]
        self.fields = resolve_fields(self.config.kommo, self.kommo.custom_fields())
        if self.fields.consent_id is None:
            self.result.warnings.append(
                "kommo.consent_field is not set: consent is not tracked and every "
                "contact counts as consenting"
            )
        self._check_catalog()
        for destination in self.engine.destinations:
            self.guarded(destination, lambda d=destination: self._prepare_destination(d))

    def _flush_memories(self) -> None:
        """What destinations learned outside a push (a feedback read's fallback…) is kept too."""
        for memory in self.memories.values():
            memory.flush()

    def _prepare_destination(self, destination: Destination) -> None:
        memory = self.memories[destination.name]
        self._replan_on_new_settings(destination, memory)
        destination.prepare(memory, self.options.dry_run)
        self._load_suppressions(destination, memory)
        memory.flush()

    def guarded(self, destination: Destination, work: Callable[[], Any]) -> Any:
        """Run a destination's stage; a fatal failure (credentials, remote checks, down after
        retries, a paging loop) sets the destination aside for the rest of the run."""
        if self.aside.reason(destination.name):
            return None
        try:
            return work()
        except (FatalError, ConfigError, RecordRejected, RetryLater) as exc:
            self.set_aside(destination.name, str(exc), by_config=isinstance(exc, ConfigError))
            return None

    def set_aside(self, name: str, reason: str, by_config: bool = False) -> None:
        if self.aside.reason(name) is None:
            log.warning("%s set aside for this run: %s", name, reason)
            self.count(**{f"{name}.set_aside": 1})
        self.aside.add(name, reason, by_config)

    def active_destinations(self) -> list[Destination]:
        return [d for d in self.engine.destinations if not self.aside.reason(d.name)]

    def _report_destinations(self) -> None:
        for destination in self.engine.destinations:
            reason = self.aside.reason(destination.name)
            cause = "config" if destination.name in self.aside.by_config else "failure"
            self.result.destinations[destination.name] = (
                {"status": "set_aside", "reason": reason, "cause": cause}
                if reason
                else {"status": "ok", "reason": ""}
            )

    def _load_suppressions(self, destination: Destination, memory: DestinationMemory) -> None:
        """Once per destination: who already opted out there, so no run ever subscribes them.
        The feedback window starts at the same moment, in the same transaction, so whatever
        happens to this run, later opt-outs are read as feedback by the next one."""
        if memory.get("suppressions_loaded"):
            return
        now = int(self.clock.now())
        emails = list(destination.known_suppressions())
        with self.state.transaction():
            self.state.suppress((email, destination.name, now) for email in emails)
            cursor = feedback_cursor(destination)
            if self.state.cursor(cursor) is None:
                self.state.set_cursor(cursor, now)
                self.state.set_cursor(cursor + ".start", now)
            self.state.set_meta(destination.name, "suppressions_loaded", True)
        self.count(**{f"{destination.name}.suppressions_known": len(emails)})

    def _check_catalog(self) -> None:
        """A pipeline whose statuses changed since the last run (renamed, added, removed)
        re-plans the contacts of its leads, so names and stages are repaired."""
        prints = {str(p.id): fingerprint(p) for p in self.catalog.pipelines.values()}
        before = self.state.meta("kommo", "catalog") or {}
        if prints == before:
            return
        changed = {
            int(pid) for pid in prints.keys() | before.keys() if prints.get(pid) != before.get(pid)
        }
        with self.state.transaction():
            requeued = self.state.requeue_leads_of_pipelines(changed) if before else 0
            self.state.set_meta("kommo", "catalog", prints)
        self.count(replanned_for_catalog_change=requeued)

    def _replan_on_new_settings(self, destination: Destination, memory: DestinationMemory) -> None:
        """A config change (tag names, field mapping…) re-plans every mirrored person; a new
        target (another audience) also forgets what was pushed to the old one."""
        settings = {"settings": fingerprint(destination.settings()), "target": destination.target()}
        previous = memory.get("settings")
        if previous == settings:
            return
        with self.state.transaction():
            if previous and previous.get("target") != settings["target"]:
                self.state.forget_pushed(destination.name)
            requeued = self.state.mark_all_dirty() if previous else 0
            self.state.set_meta(destination.name, "settings", settings)
        self.count(**{f"{destination.name}.replanned_for_new_settings": requeued})

    def _window(self) -> tuple[int, int]:
        if self.options.since is not None:
            return self.options.since, self.options.until or self.started
        cursor = self.state.cursor(CONTACTS_CURSOR)
        since = 0 if cursor is None else max(0, cursor - self.config.kommo.overlap_seconds)
        return since, self.started

    def _advance_cursor(self) -> None:
        """The contacts cursor moves (every contact's outcome is recorded, or held for a
        destination that was set aside); events and feedback only where nothing was held."""
        if self.options.mode == "run":
            events_held = self.result.counts["events_held_unknown_status"] or any(
                self.aside.reason(d.name) for d in self._event_destinations()
            )
            with self.state.transaction():
                self.state.set_cursor(CONTACTS_CURSOR, self.result.window[1])
                if self._event_destinations() and not events_held:
                    self.state.set_cursor(EVENTS_CURSOR, self.result.window[1])
                self.feedback.advance_cursors(self.active_destinations())

    # pull ----------------------------------------------------------------------------------
    def _pull(self, since: int, until: int) -> None:
        for page in read_ahead(self.kommo.changed("leads", since, until), READ_AHEAD_PAGES):
            self._store_leads(page)
        for page in read_ahead(self.kommo.changed("contacts", since, until), READ_AHEAD_PAGES):
            self._store_contacts(page)
            self._process_ready(final=False)
        missing = self.state.dirty_missing_from_mirror()
        for page in self.kommo.by_ids("contacts", missing):
            self._store_contacts(page, count_as="contacts_by_id")

    def _store_leads(self, page: list[dict[str, Any]]) -> None:
        leads = [parse_lead(raw) for raw in page]
        if self.config.kommo.pipelines:
            leads = [lead for lead in leads if self._pipeline_selected(lead.pipeline_id)]
        self.count(pulled_leads=len(page), changed_leads=mirror_leads(self.state, leads))

    def _store_contacts(
        self, page: list[dict[str, Any]], count_as: str = "pulled_contacts"
    ) -> None:
        contacts = [parse_contact(raw, self.fields) for raw in page]
        self.count(
            **{count_as: len(page), "changed_contacts": mirror_contacts(self.state, contacts)}
        )
        self._want_companies({c.company_id for c in contacts if c.company_id})

    def _pipeline_selected(self, pipeline_id: int) -> bool:
        wanted = self.config.kommo.pipelines
        return pipeline_id in wanted or self.catalog.pipeline_name(pipeline_id) in wanted

    # plan, push, record ---------------------------------------------------------------------
    def _process_ready(self, final: bool) -> None:
        """Plan and push queued contacts that are in the mirror: full batches while the pull goes
        on (their leads are all in, since leads are pulled first); at the end the rest, in smaller
        batches when earlier ones are still being pushed (the workers share the tail; a run with
        nothing in flight, as most incremental runs, keeps full batches: fewer vendor jobs), then
        whatever was queued again meanwhile."""
        size = FINAL_BATCH_SIZE if final and self.pipeline.busy else BATCH_SIZE
        for batch in self.state.ready_batches(size, after=self.watermark):
            if len(batch) < size and not final:
                return
            self.watermark = batch[-1]
            self._process_batch(batch)
        if final:
            self.pipeline.collect()
            for batch in self.state.ready_batches(size):
                self._process_batch(batch)
            self.pipeline.collect()

    def _process_batch(self, batch: list[int]) -> None:
        seq = self.state.dirty_seq()
        batch = self._without_unknown_statuses(batch)
        people = self._people(batch)
        self.count(people=len(people))
        self._remember_rows(people)
        work = [(d, self._plan(d, people)) for d in self.engine.destinations]
        work = [(d, changes) for d, changes in work if changes and not self.options.dry_run]
        self._note_own_optouts(work)

        def push() -> list[tuple[Destination, list[Outcome]]]:
            """Every destination at once: each has its own limits, none waits for another."""
            if len(work) < 2:
                return [(d, self._push(d, changes)) for d, changes in work]
            with ThreadPoolExecutor(
                max_workers=len(work), thread_name_prefix="destination"
            ) as pool:
                futures = [(d, pool.submit(self._push, d, changes)) for d, changes in work]
                return [(d, future.result()) for d, future in futures]

        def record(results: list[tuple[Destination, list[Outcome]]]) -> None:
            for destination, outcomes in results:
                self._record(destination.name, outcomes)
                self.memories[destination.name].flush()
            with self.state.transaction():
                self.state.clear_dirty(batch, seq)

        self.pipeline.submit(push, record)

    def _push(self, destination: Destination, changes: list[Change]) -> list[Outcome]:
        """Push one destination's changes (on a worker); a destination already set aside, or
        failing now, holds them: transient, so its queue keeps them for the next run."""
        reason = self.aside.reason(destination.name)
        if reason is None:
            try:
                return destination.push(changes)
            except RetryLater as exc:
                return [Outcome(change, False, False, f"held back: {exc}") for change in changes]
            except (FatalError, RecordRejected, ConfigError) as exc:
                reason = str(exc)
                self.aside.add(destination.name, reason, by_config=isinstance(exc, ConfigError))
        return [
            Outcome(change, False, False, f"held back: {destination.name} was set aside ({reason})")
            for change in changes
        ]

    def _without_unknown_statuses(self, batch: list[int]) -> list[int]:
        """Contacts with a lead whose pipeline or status the catalog lacks stay queued: a stage is
        never guessed. They are planned once the catalog holds it."""
        unknown = {
            cid
            for cid, leads in self.state.leads_of(batch).items()
            if any(self.catalog.status(lead.pipeline_id, lead.status_id) is None for lead in leads)
        }
        if unknown - self.held_unknown:
            self.count(held_unknown_status=len(unknown - self.held_unknown))
            self.held_unknown |= unknown
        return [cid for cid in batch if cid not in unknown]

    def _note_own_optouts(self, work: list[tuple[Destination, list[Change]]]) -> None:
        """Before pushing: the unsubscribes we are about to make, so they are never news."""
        now = int(self.clock.now())
        with self.state.transaction():
            for destination, changes in work:
                self.state.note_own_optouts(
                    destination.name, (c.email for c in changes if c.opts_out and c.email), now
                )

    def _people(self, contact_ids: list[int]) -> list[Person]:
        return people_of(self.state, contact_ids, self.catalog, self._company_names)

    def _want_companies(self, ids: set[int]) -> None:
        """Collect company ids whose names are unknown and fetch them in full pages of 250, so
        names cost the minimum number of Kommo requests; the rest is fetched when needed."""
        new = ids - self.companies_seen
        self.companies_seen |= new
        self.companies_missing |= new - set(self.state.company_names(new))
        while len(self.companies_missing) >= COMPANY_PAGE:
            self._fetch_companies(set(sorted(self.companies_missing)[:COMPANY_PAGE]))

    def _company_names(self, ids: set[int]) -> dict[int, str]:
        """Names from the state, fetching the unknown ones from Kommo."""
        names = self.state.company_names(ids)
        return {**names, **self._fetch_companies(ids - set(names))}

    def _fetch_companies(self, ids: set[int]) -> dict[int, str]:
        fetched: dict[int, str] = {}
        for page in self.kommo.by_ids("companies", ids):
            fetched.update({int(raw["id"]): raw.get("name") or "" for raw in page})
            self.count(pulled_companies=len(page))
        self.companies_missing -= ids
        if fetched:
            with self.state.transaction():
                self.state.save_companies(fetched)
        return fetched

    def _plan(self, destination: Destination, people: list[Person]) -> list[Change]:
        ids = [p.contact_id for p in people]
        pushed = self.state.pushed(destination.name, ids)
        suppressed = self.state.suppressed(p.email for p in people if p.email)
        plan = destination.plan(people, pushed, suppressed)
        changes = self._drop_known_rejections(destination.name, plan)
        self.count(**Counter(f"{destination.name}.skipped.{skip.reason}" for skip in plan.skipped))
        self._note_changes(destination, changes)
        return changes

    def _drop_known_rejections(self, name: str, plan: Plan) -> list[Change]:
        """A permanent rejection is retried only when the person's data (fingerprint) changes."""
        known = self.state.rejections(name, {c.person_id for c in plan.changes})
        kept = [c for c in plan.changes if known.get(c.person_id) != ("permanent", c.fingerprint)]
        self.count(**{f"{name}.still_rejected": len(plan.changes) - len(kept)})
        return kept

    def _record(self, name: str, outcomes: list[Outcome]) -> None:
        reason = self.aside.reason(name)
        if reason:
            self.set_aside(name, reason)
        now = int(self.clock.now())
        with self.state.transaction():
            done = [o for o in outcomes if o.ok]
            self.state.record_pushed(
                name,
                [
                    (
                        o.change.person_id,
                        o.change.fingerprint,
                        {**o.change.record, **o.record_updates},
                    )
                    for o in done
                ],
            )
            self.state.clear_rejections(name, [o.change.person_id for o in done])
            for outcome in outcomes:
                if not outcome.ok:
                    self._reject(name, outcome, now)
        self.count(**{f"{name}.done": len(done), "pushed": len(done)})

    def _reject(self, name: str, outcome: Outcome, now: int) -> None:
        """Store a rejection; vendors echo request data in their reasons, so secrets are masked first."""
        change = outcome.change
        reason = scrub(outcome.reason, self.config.secrets)
        self.state.record_rejection(
            name,
            change.person_id,
            outcome.kind,
            reason,
            change.fingerprint,
            change.email,
            self.result.run_id,
            now,
        )
        self.count(rejected=1, **{f"{name}.rejected.{outcome.kind}": 1})
        self._list_rejection(name, outcome, outcome.reason)

    # deal events ---------------------------------------------------------------------------------
    def _event_destinations(self) -> list[Destination]:
        return [d for d in self.engine.destinations if d.wants_deal_events]

    def _active_event_destinations(self) -> list[Destination]:
        return [d for d in self._event_destinations() if not self.aside.reason(d.name)]

    def _events_window(self, targets: list[Destination]) -> tuple[int, int]:
        """Backfill: its own range. Run: since the events cursor, never below where history
        starts for this account: the destinations' `events_since`, by default the first run's
        start, stored once so no old flow fires and a crashed first run loses nothing."""
        if self.options.since is not None:
            return self.result.window
        start = self.state.cursor(EVENTS_START)
        if start is None:
            starts = [s for s in (d.events_since() for d in targets) if s is not None]
            start = min(starts, default=self.started)
            if not self.options.dry_run:
                with self.state.transaction():
                    self.state.set_cursor(EVENTS_START, start)
        cursor = self.state.cursor(EVENTS_CURSOR)
        if cursor is None:
            return start, self.started
        return max(start, cursor - self.config.kommo.overlap_seconds), self.started

    def _sync_events(self) -> None:
        """Kommo's lead events since the events cursor, pushed in batches of EVENT_BATCH."""
        targets = self._active_event_destinations()
        if not targets:
            return
        for destination in targets:
            self.guarded(destination, lambda d=destination: self._resend_in_flight(d))
        buffer: list[DealEvent] = []
        for page in self.kommo.lead_events(*self._events_window(targets)):
            buffer += self._deal_events(page)
            self.count(pulled_events=len(page))
            if len(buffer) >= EVENT_BATCH:
                self._push_event_batch(targets, buffer)
                buffer = []
        self._push_event_batch(targets, buffer)

    def _push_event_batch(self, targets: list[Destination], events: list[DealEvent]) -> None:
        if events:
            for destination in targets:
                if not self.aside.reason(destination.name):
                    self._push_events(destination, events)

    def _deal_events(self, page: list[dict[str, Any]]) -> list[DealEvent]:
        lead_ids = {int(raw["entity_id"]) for raw in page if raw.get("entity_id")}
        leads = self.state.known_leads(lead_ids)
        missing = lead_ids - set(leads)
        for fetched in self.kommo.by_ids("leads", missing):
            self._store_leads(fetched)
        leads.update(self.state.known_leads(missing))
        people = self._people_by_contact(
            {lead.main_contact_id for lead in leads.values() if lead.main_contact_id}
        )
        events = []
        for raw in sorted(page, key=lambda r: (int(r.get("created_at") or 0), str(r.get("id")))):
            lead = leads.get(int(raw.get("entity_id") or 0))
            if lead is None or (
                self.config.kommo.pipelines and not self._pipeline_selected(lead.pipeline_id)
            ):
                continue
            if not _statuses_known(raw, lead, self.catalog):
                self.count(events_held_unknown_status=1)
                continue
            event = deal_event(
                raw,
                lead,
                self.catalog,
                people.get(lead.main_contact_id or 0),
                backfill=self.options.mode == "backfill",
            )
            if event is not None:
                events.append(event)
        return events

    def _people_by_contact(self, contact_ids: set[int]) -> dict[int, Person]:
        people = self._people(sorted(contact_ids)) if contact_ids else []
        return {cid: person for person in people for cid in person.contact_ids}

    def _push_events(self, destination: Destination, events: list[DealEvent]) -> None:
        known = self.state.event_statuses(destination.name, [e.id for e in events])
        plan = destination.plan_events([e for e in events if e.id not in known])
        self.count(
            **Counter(f"{destination.name}.events_skipped.{skip.reason}" for skip in plan.skipped)
        )
        self.count(
            **{
                f"{destination.name}.events_already_sent": len(events)
                - len(plan.changes)
                - len(plan.skipped)
            }
        )
        self._note_changes(destination, plan.changes)
        if self.options.dry_run or not plan.changes:
            return
        now = int(self.clock.now())
        with self.state.transaction():
            self.state.mark_events(destination.name, "pending", now, map(_event_row, plan.changes))
        self.pipeline.submit(
            lambda: self._send_events(destination, plan.changes),
            lambda outcomes: self._record_events(destination, outcomes),
        )

    def _send_events(self, destination: Destination, changes: list[Change]) -> list[Outcome]:
        """On a worker: events stay `pending` (re-sent through the de-duplicating path next run)
        when their destination fails."""
        if self.aside.reason(destination.name) is None:
            try:
                return destination.push_events(changes)
            except RetryLater:
                return []
            except (FatalError, RecordRejected, ConfigError) as exc:
                self.aside.add(destination.name, str(exc), by_config=isinstance(exc, ConfigError))
        return []

    def _resend_in_flight(self, destination: Destination) -> None:
        """Events whose outcome a crash left unknown go again, through the de-duplicating path."""
        rows = self.state.events_in_flight(destination.name)
        changes = [
            Change(destination.name, pid, email, action, "", {"event_id": eid}, {}, payload)
            for eid, pid, email, action, payload in rows
        ]
        self.count(**{f"{destination.name}.events_in_flight": len(changes)})
        if changes and not self.options.dry_run:
            self._record_events(destination, destination.push_events(changes, outcome_unknown=True))

    def _record_events(self, destination: Destination, outcomes: list[Outcome]) -> None:
        reason = self.aside.reason(destination.name)
        if reason:
            self.set_aside(destination.name, reason)
        now = int(self.clock.now())
        sent = [o for o in outcomes if o.ok]
        refused = [o for o in outcomes if not o.ok and o.permanent]
        with self.state.transaction():
            self.state.mark_events(
                destination.name, "sent", now, (_event_row(o.change) for o in sent)
            )
            self.state.mark_events(
                destination.name,
                "rejected",
                now,
                (_event_row(o.change, scrub(o.reason, self.config.secrets)) for o in refused),
            )
        self.count(**{f"{destination.name}.events_sent": len(sent)})
        for outcome in outcomes:
            if not outcome.ok:
                self._reject_event(destination.name, outcome)

    def _reject_event(self, name: str, outcome: Outcome) -> None:
        self.count(rejected=1, **{f"{name}.events_rejected.{outcome.kind}": 1})
        self._list_rejection(
            name, outcome, f"event {outcome.change.record.get('event_id')}: {outcome.reason}"
        )

    def _list_rejection(self, name: str, outcome: Outcome, reason: str) -> None:
        change = outcome.change
        self.result.keep(
            "rejections",
            [
                {
                    "destination": name,
                    "contact_id": change.person_id,
                    "email": change.email,
                    "kind": outcome.kind,
                    "reason": reason,
                }
            ],
        )

    def _note_changes(self, destination: Destination, changes: list[Change]) -> None:
        for change in changes:
            self.count(**{f"{destination.name}.{change.action}": 1})
        self.result.keep("changes", changes)

    def _remember_rows(self, people: list[Person]) -> None:
        self.result.keep(
            "people",
            (
                PersonRow(
                    contact_id=p.contact_id,
                    email=p.email,
                    stage=p.stage.value,
                    tag=self.config.tags[p.stage],
                    deal=p.deal.name if p.deal else None,
                    deal_id=p.deal.id if p.deal else None,
                )
                for p in people
            ),
        )

    def enter(self, phase: str) -> None:
        """Name the phase for progress and for every log record from now on."""
        self.phase = phase
        logs.bind(phase=phase)
        self.engine.progress(phase, self.result.counts)

    def count(self, **amounts: int) -> None:
        """Add to the run's counters (zero amounts are not recorded) and report progress: whatever
        a phase does is counted, so every phase (pull, push, events, notes) gets its heartbeat."""
        for key, amount in amounts.items():
            if amount:
                self.result.counts[key] += amount
        self.engine.progress(self.phase, self.result.counts)


def _statuses_known(raw: dict[str, Any], lead: Lead, catalog: Catalog) -> bool:
    """An event waits when the catalog lacks both the status it moved to and the lead's current
    one (a stale catalog); a status deleted since the event only loses its name."""
    after = lead_status(raw.get("value_after")) or (lead.pipeline_id, lead.status_id)
    return (
        catalog.status(*after) is not None
        or catalog.status(lead.pipeline_id, lead.status_id) is not None
    )


def _event_row(
    change: Change, reason: str | None = None
) -> tuple[str, int, str | None, str, Any, str | None]:
    return (
        change.record["event_id"],
        change.person_id,
        change.email,
        change.action,
        change.payload,
        reason,
    )
