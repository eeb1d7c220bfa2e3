"""One run: lock → feedback read → pull → plan → push → record → events → notes → cursors.

The engine knows no vendor: Kommo comes in through KommoClient, destinations through the
Destination interface. Pages stream into the state's mirror; changed contacts wait in a durable
queue until every destination's outcome for them is recorded, and only then does the cursor move.
Each stage gets its collaborators (state, clients, windows, the tally), never the run itself.
"""

from __future__ import annotations

from functools import partial

from kommo_sync import logs, window
from kommo_sync.aside import SetAside
from kommo_sync.clock import Clock
from kommo_sync.config import Config
from kommo_sync.destinations.base import (
    Destination,
    event_sinks,
    feedback_sources,
)
from kommo_sync.errors import ConfigError, FatalError, Interrupted, RecordRejected, RetryLater
from kommo_sync.event_sync import EventStage, rejection_row
from kommo_sync.exits import exit_code_of
from kommo_sync.feedback import FeedbackStage
from kommo_sync.field_setup import field_map
from kommo_sync.forget import without_forgotten
from kommo_sync.kommo import KommoClient, resolve_fields
from kommo_sync.lifecycle import LifecycleStage
from kommo_sync.masking import scrub
from kommo_sync.memory import DestinationMemory
from kommo_sync.model import Person
from kommo_sync.pipeline import IN_FLIGHT_RECORDS, PushPipeline, side_by_side
from kommo_sync.pipelines import pipeline_errors
from kommo_sync.plan import Change, Outcome
from kommo_sync.planning import plan_changes
from kommo_sync.prepare import check_catalog, connect, replan_on_new_settings
from kommo_sync.pull import Pull
from kommo_sync.reconcile import ReconcileStage
from kommo_sync.results import PersonRow, RunOptions, RunResult
from kommo_sync.state import State, open_state, run_lock
from kommo_sync.tally import Progress, Tally
from kommo_sync.window import Windows

BATCH_SIZE = 5_000
FINAL_BATCH_SIZE = 1_250


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
        self.progress = progress

    def run(self, options: RunOptions) -> RunResult:
        lock = run_lock(self.config)
        lock.acquire(self.clock.now())
        try:
            if options.dry_run:
                self.kommo.log_in()  # before the dry run's transaction holds the state's lock
            with open_state(self.config, dry_run=options.dry_run) as state:
                return _Run(self, state, options).execute()
        finally:
            lock.release()


class _Run:
    """The work of one run: its state, windows, stages and counters."""

    def __init__(self, engine: Engine, state: State, options: RunOptions):
        self.state, self.options, self.destinations = state, options, engine.destinations
        self.config, self.kommo, self.clock = engine.config, engine.kommo, engine.clock
        self.started = int(self.clock.now())
        self.result = RunResult(
            None, options.mode, options.dry_run, (0, 0), started_at=self.started,
            account=self.config.account,
        )  # fmt: skip
        self.tally = Tally(self.result, engine.progress)
        self.windows = _windows(options, self.started, self.config.kommo.overlap_seconds)
        self.aside = SetAside(self.tally)
        self.pipeline = PushPipeline(
            not options.dry_run,
            depth=10,
            workers=8,
            check=self.clock.check,
            budget=IN_FLIGHT_RECORDS,
        )
        self.memories = {d.name: DestinationMemory(state, d.name) for d in self.destinations}
        self.pull = Pull(state, self.kommo, self.tally, self.config.kommo.pipelines)
        secrets = self.config.secrets
        self.feedback = FeedbackStage(
            state, self.kommo, self.config.feedback, self.windows, self.tally, self.clock, secrets
        )
        self.events = EventStage(
            state, self.kommo, self.pull, self.windows, self.tally, self.aside, self.pipeline,
            self.clock, options.dry_run, secrets, self.config.forget_key,
        )  # fmt: skip
        self.reconcile = ReconcileStage(
            state, self.feedback, self.tally, self.aside, options.reconcile
        )
        self.lifecycle = LifecycleStage(
            state, self.kommo, self.pull, self.windows, self.tally, options.reconcile_kommo
        )
        self.watermark = -1
        self.held_unknown: set[int] = set()

    def execute(self) -> RunResult:
        self.result.run_id = self.feedback.run_id = self.state.start_run(
            self.options.mode, self.started
        )
        logs.bind(run_id=self.result.run_id, phase=self.tally.phase)
        status = "failed"
        failure: BaseException | None = None  # what ended the run, if anything did
        try:
            self._stages()
            status = self._status()
        except BaseException as exc:
            failure = exc
            status = "interrupted" if isinstance(exc, Interrupted | KeyboardInterrupt) else "failed"
            raise
        finally:
            names = [d.name for d in self.destinations]
            self.result.destinations = self.aside.standing(names)
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

    def _stages(self) -> None:
        self._prepare()
        self.result.window = self._contacts_window()
        self.tally.enter("feedback")
        for source in feedback_sources(self._active()):
            self.aside.guarded(source.name, partial(self.feedback.read, source))
        self._flush_memories()
        self.reconcile.read(self._active())
        with self.state.transaction():
            self.state.requeue_transient_rejections()
            if self.options.full_resync:
                self.state.mark_all_dirty()
        self.tally.enter("lifecycle")
        self.lifecycle.read()
        self.lifecycle.make_exits(self.destinations, self._push, self._record)
        if self.options.only is None:
            self.tally.enter("pull")
            self.pull.read(*self.result.window, after_contacts=lambda: self._process_ready(False))
        self.tally.enter("push")
        self._process_ready(final=True)
        if self.options.only is None:
            self.tally.enter("events")
            self.events.sync(self.destinations)
        self.pipeline.close()
        self.tally.enter("notes")
        if not self.options.dry_run:
            self.feedback.write_notes(self.pull.fields.consent_id)
        self._flush_memories()
        self._advance_cursors()

    def _status(self) -> str:
        if self.held_unknown:
            self.result.warnings.append(
                f"{len(self.held_unknown)} contacts wait for a pipeline or status "
                "missing from Kommo's catalog; they are planned once it is there"
            )
        if self.aside.reasons:
            return "destination_failed"
        return "done" if not self.result.rejected else "done_with_rejections"

    def _ending(self, failure: BaseException | None) -> tuple[int, str | None]:
        """The exit code and error text the run's row keeps (secrets masked): the failure that
        ended the run, else why destinations were set aside."""
        if failure is not None:
            text = str(failure) or type(failure).__name__
            return exit_code_of(failure), scrub(text, self.config.secrets)
        reasons = "; ".join(f"{name}: {reason}" for name, reason in self.aside.reasons.items())
        return self.result.exit_code, scrub(reasons, self.config.secrets) or None

    def _active(self) -> list[Destination]:
        return [d for d in self.destinations if not self.aside.reason(d.name)]

    # prepare -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        catalog = self.pull.catalog = self.kommo.catalog()
        errors = pipeline_errors(self.config.kommo.pipelines, catalog)
        if errors:
            raise errors[0]
        contact_fields = self.kommo.custom_fields()
        self.pull.fields = resolve_fields(self.config.kommo, contact_fields)
        self.pull.reader = field_map(
            self.kommo, self.destinations, catalog, contact_fields, self.tally
        )
        if self.pull.fields.consent_id is None:
            self.result.warnings.append(
                "kommo.consent_field is not set: consent is not tracked and every "
                "contact counts as consenting"
            )
        check_catalog(self.state, self.pull.catalog, self.tally)
        for destination in self.destinations:
            self.aside.guarded(destination.name, partial(self._prepare_one, destination))

    def _flush_memories(self) -> None:
        """What destinations learned outside a push (a feedback read's fallback…) is kept too."""
        for memory in self.memories.values():
            memory.flush()

    def _prepare_one(self, destination: Destination) -> None:
        memory = self.memories[destination.name]
        replan_on_new_settings(self.state, destination, memory, self.tally)
        destination.prepare(memory, self.options.dry_run)
        connect(self.state, destination, memory, int(self.clock.now()), self.tally)
        memory.flush()

    def _contacts_window(self) -> tuple[int, int]:
        """The incremental window; read whole once when a field map needs what a mirror kept
        from before it (custom fields, tags, companies) lacks."""
        cursor = self.state.cursor(window.CONTACTS)
        if cursor is not None and self.pull.reader and self.state.cursor(window.WHOLE) is None:
            self.tally.warn(
                "the field map needs every value Kommo holds, and the mirror predates it: this "
                "run reads Kommo whole once (later runs are incremental again)"
            )
            cursor = None
        return self.windows.of(cursor)

    def _advance_cursors(self) -> None:
        """The contacts cursor moves (every contact's outcome is recorded, or held for a
        destination that was set aside; not after `retry --now`, which reads no contacts);
        events and feedback only where nothing was held."""
        if self.windows.backfill is not None:
            return
        sinks = event_sinks(self.destinations)
        events_held = self.result.counts["events_held_unknown_status"] or any(
            self.aside.reason(d.name) for d in sinks
        )
        pulled = self.options.only is None
        with self.state.transaction():
            if pulled:
                self.state.set_cursor(window.CONTACTS, self.result.window[1])
                if self.result.window[0] == 0 and self.state.cursor(window.WHOLE) is None:
                    self.state.set_cursor(window.WHOLE, self.result.window[1])
            self.state.set_cursor(window.LIFECYCLE, self.lifecycle.window[1])
            if sinks and not events_held and pulled:
                self.state.set_cursor(window.EVENTS, self.result.window[1])
            self.feedback.advance_cursors([d.name for d in self._active()])

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
        self.pull.complete_leads()
        seq = self.state.dirty_seq()
        if self.options.only is not None:  # `retry --now`: the rest stays queued
            batch = [cid for cid in batch if cid in self.options.only]
        batch = self._without_unknown_statuses(batch)
        people = self._without_forgotten(self.pull.people(batch))
        self.tally.count(people=len(people))
        self.tally.keep("people", (PersonRow.of(p, self.config.tags[p.stage]) for p in people))
        full_resync = self.options.full_resync
        work = [
            (d, plan_changes(self.state, d, people, self.tally, full_resync))
            for d in self.destinations
        ]
        work = [(d, changes) for d, changes in work if changes and not self.options.dry_run]
        self._note_own_optouts(work)

        def push() -> list[tuple[Destination, list[Outcome]]]:
            """Every destination at once: each has its own limits, none waits for another."""
            jobs = [partial(self._pushed, d, changes) for d, changes in work]
            return side_by_side(jobs, limit=len(jobs), name="destination")

        def record(results: list[tuple[Destination, list[Outcome]]]) -> None:
            for destination, outcomes in results:
                self._record(destination.name, outcomes)
                self.memories[destination.name].flush()
            with self.state.transaction():
                self.state.clear_dirty(batch, seq)

        self.pipeline.submit(push, record, size=len(batch))

    def _without_forgotten(self, people: list[Person]) -> list[Person]:
        """People `forget` erased are skipped everywhere while Kommo still holds them."""
        kept, forgotten = without_forgotten(self.state, self.config.forget_key, people)
        for destination in self.destinations:
            self.tally.count(**{f"{destination.name}.skipped.forgotten": forgotten})
        return kept

    def _pushed(
        self, destination: Destination, changes: list[Change]
    ) -> tuple[Destination, list[Outcome]]:
        return destination, self._push(destination, changes)

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
                by_config = isinstance(exc, ConfigError)
                self.aside.add(destination.name, reason, by_config=by_config)
        held = f"held back: {destination.name} was set aside ({reason})"
        return [Outcome(change, False, False, held) for change in changes]

    def _without_unknown_statuses(self, batch: list[int]) -> list[int]:
        """Contacts with a lead whose pipeline or status the catalog lacks stay queued: a stage is
        never guessed. They are planned once the catalog holds it."""
        catalog = self.pull.catalog
        unknown = {
            cid
            for cid, leads in self.state.leads_of(batch).items()
            if any(catalog.status(lead.pipeline_id, lead.status_id) is None for lead in leads)
        }
        if unknown - self.held_unknown:
            self.tally.count(held_unknown_status=len(unknown - self.held_unknown))
            self.held_unknown |= unknown
        return [cid for cid in batch if cid not in unknown]

    def _note_own_optouts(self, work: list[tuple[Destination, list[Change]]]) -> None:
        """Before pushing: the unsubscribes we are about to make, so they are never news."""
        now = int(self.clock.now())
        with self.state.transaction():
            for destination, changes in work:
                emails = (c.email for c in changes if c.opts_out and c.email)
                self.state.note_own_optouts(destination.name, emails, now)

    def _record(self, name: str, outcomes: list[Outcome]) -> None:
        reason = self.aside.reason(name)
        if reason:
            self.aside.announce(name, reason)
        now = int(self.clock.now())
        done = [o for o in outcomes if o.ok]
        with self.state.transaction():
            rows = [
                (o.change.person_id, o.change.fingerprint, {**o.change.record, **o.record_updates})
                for o in done
            ]
            self.state.record_pushed(name, rows)
            self.state.clear_rejections(name, [o.change.person_id for o in done])
            for outcome in outcomes:
                if not outcome.ok:
                    self._reject(name, outcome, now)
        self.tally.count(**{f"{name}.done": len(done), "pushed": len(done)})

    def _reject(self, name: str, outcome: Outcome, now: int) -> None:
        """Store a rejection; vendors echo request data in reasons, so secrets are masked first."""
        change = outcome.change
        reason = scrub(outcome.reason, self.config.secrets)
        self.state.record_rejection(
            name, change.person_id, outcome.kind, reason, change.fingerprint, change.email,
            self.result.run_id, now,
        )  # fmt: skip
        self.tally.count(rejected=1, **{f"{name}.rejected.{outcome.kind}": 1})
        self.tally.keep("rejections", [rejection_row(name, outcome, outcome.reason)])


def _windows(options: RunOptions, started: int, overlap: int) -> Windows:
    if options.since is None:
        return Windows(started, overlap)
    return Windows(started, overlap, backfill=(options.since, options.until or started))
