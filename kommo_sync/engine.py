"""One run: lock → feedback read → pull → plan → push → record → notes.

The engine knows no vendor: Kommo comes in through KommoClient, destinations through the
Destination interface. Pages stream into the state's mirror; changed contacts wait in a durable
queue until every destination's outcome for them is recorded, and only then does the cursor move.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from kommo_sync.clock import Clock
from kommo_sync.config import Config
from kommo_sync.destinations.base import Change, Destination, DestinationMemory, Outcome, Plan
from kommo_sync.kommo import FieldMap, KommoClient, parse_contact, parse_lead, resolve_fields
from kommo_sync.model import Catalog, Contact, Person
from kommo_sync.people import group_by_email, person_from_contacts
from kommo_sync.state import FileLock, State, contact_to_row

log = logging.getLogger("kommo_sync.engine")

CONTACTS_CURSOR = "kommo.updated_at"
BATCH_SIZE = 2000
DETAIL_LIMIT = 2000


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    since: int | None = None
    until: int | None = None

    @property
    def mode(self) -> str:
        return "backfill" if self.since is not None else "run"


@dataclass(frozen=True)
class PersonRow:
    """One changed person as the report shows it."""

    contact_id: int
    email: str | None
    stage: str
    tag: str
    deal: str | None
    deal_id: int | None


@dataclass
class RunResult:
    run_id: int | None
    mode: str
    dry_run: bool
    window: tuple[int, int]
    counts: Counter[str] = field(default_factory=Counter)
    people: list[PersonRow] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return self.counts["rejected"]


Progress = Callable[[str, Counter[str]], None]


class Engine:
    def __init__(self, config: Config, kommo: KommoClient, destinations: list[Destination],
                 clock: Clock | None = None, progress: Progress | None = None):
        self.config, self.kommo, self.destinations = config, kommo, destinations
        self.clock = clock or Clock()
        self.progress = progress or (lambda stage, counts: None)

    def run(self, options: RunOptions) -> RunResult:
        lock = FileLock(self.config.state.with_name(self.config.state.name + ".lock"))
        lock.acquire()
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
        self.result = RunResult(None, options.mode, options.dry_run, (0, 0),
                                destinations=[d.name for d in engine.destinations])

    def execute(self) -> RunResult:
        self.result.run_id = self.state.start_run(self.options.mode, self.started)
        status = "failed"
        try:
            self._prepare()
            self.result.window = self._window()
            with self.state.transaction():
                self.state.requeue_transient_rejections()
            self._pull(*self.result.window)
            self._process_queue()
            self._advance_cursor()
            status = "done" if not self.result.rejected else "done_with_rejections"
        finally:
            self.state.finish_run(self.result.run_id, status, int(self.clock.now()), dict(self.result.counts))
        return self.result

    def _prepare(self) -> None:
        self.catalog = self.kommo.catalog()
        self.fields = resolve_fields(self.config.kommo, self.kommo.custom_fields())
        if self.fields.consent_id is None:
            self.result.warnings.append("kommo.consent_field is not set: consent is not tracked and every "
                                        "contact counts as consenting")
        for destination in self.engine.destinations:
            destination.prepare(DestinationMemory(self.state, destination.name), self.options.dry_run)

    def _window(self) -> tuple[int, int]:
        if self.options.since is not None:
            return self.options.since, self.options.until or self.started
        cursor = self.state.cursor(CONTACTS_CURSOR)
        since = 0 if cursor is None else max(0, cursor - self.config.kommo.overlap_seconds)
        return since, self.started

    def _advance_cursor(self) -> None:
        if self.options.mode == "run":
            with self.state.transaction():
                self.state.set_cursor(CONTACTS_CURSOR, self.result.window[1])

    # pull ----------------------------------------------------------------------------------
    def _pull(self, since: int, until: int) -> None:
        for page in self.kommo.changed("leads", since, until):
            self._store_leads(page)
        for page in self.kommo.changed("contacts", since, until):
            self._store_contacts(page)
        missing = self.state.dirty_missing_from_mirror()
        for page in self.kommo.by_ids("contacts", missing):
            self._store_contacts(page, count_as="contacts_by_id")

    def _store_leads(self, page: list[dict[str, Any]]) -> None:
        leads = [parse_lead(raw) for raw in page]
        if self.config.kommo.pipelines:
            leads = [lead for lead in leads if self._pipeline_selected(lead.pipeline_id)]
        known = self.state.known_leads(lead.id for lead in leads)
        changed = [lead for lead in leads if known.get(lead.id) != lead]
        touched = {cid for lead in changed for cid in lead.contact_ids}
        touched |= {cid for lead in changed if lead.id in known for cid in known[lead.id].contact_ids}
        with self.state.transaction():
            self.state.upsert_leads(changed)
            self.state.mark_dirty(touched)
        self._count(pulled_leads=len(page), changed_leads=len(changed))

    def _store_contacts(self, page: list[dict[str, Any]], count_as: str = "pulled_contacts") -> None:
        contacts = [parse_contact(raw, self.fields) for raw in page]
        rows = {c.id: contact_to_row(c) for c in contacts}
        previous = self.state.contacts(rows)
        changed = [c for c in contacts if c.id not in previous or contact_to_row(previous[c.id]) != rows[c.id]]
        old_emails = {previous[c.id].email for c in changed if c.id in previous} - {None}
        neighbours = [cid for ids in self.state.contact_ids_by_email(old_emails).values() for cid in ids]
        with self.state.transaction():
            self.state.upsert_contacts(changed)
            self.state.mark_dirty([c.id for c in changed] + neighbours)
        self._count(**{count_as: len(page), "changed_contacts": len(changed)})

    def _pipeline_selected(self, pipeline_id: int) -> bool:
        wanted = self.config.kommo.pipelines
        return pipeline_id in wanted or self.catalog.pipeline_name(pipeline_id) in wanted

    # plan, push, record ---------------------------------------------------------------------
    def _process_queue(self) -> None:
        for batch in self.state.dirty_batches(BATCH_SIZE):
            people = self._people(batch)
            self._count(people=len(people))
            self._remember_rows(people)
            for destination in self.engine.destinations:
                self._sync(destination, people)
            with self.state.transaction():
                self.state.clear_dirty(batch)
            self.engine.progress("push", self.result.counts)

    def _people(self, contact_ids: list[int]) -> list[Person]:
        dirty = self.state.contacts(contact_ids)
        emails = {c.email for c in dirty.values() if c.email}
        group_ids = {cid for ids in self.state.contact_ids_by_email(emails).values() for cid in ids}
        contacts = {**self.state.contacts(group_ids - set(dirty)), **dirty}
        leads = self.state.leads_of(contacts)
        companies = self._company_names({c.company_id for c in contacts.values() if c.company_id})
        return [person_from_contacts(group, leads, companies, self.catalog)
                for group in group_by_email(contacts.values())]

    def _company_names(self, ids: set[int]) -> dict[int, str]:
        """Names from the state, fetching the unknown ones from Kommo 250 ids a request."""
        names = self.state.company_names(ids)
        fetched: dict[int, str] = {}
        for page in self.kommo.by_ids("companies", ids - set(names)):
            fetched.update({int(raw["id"]): raw.get("name") or "" for raw in page})
            self._count(pulled_companies=len(page))
        if fetched:
            with self.state.transaction():
                self.state.save_companies(fetched)
        return {**names, **fetched}

    def _sync(self, destination: Destination, people: list[Person]) -> None:
        ids = [p.contact_id for p in people]
        pushed = self.state.pushed(destination.name, ids)
        suppressed = self.state.suppressed(p.email for p in people if p.email)
        plan = destination.plan(people, pushed, suppressed)
        changes = self._drop_known_rejections(destination.name, plan)
        self._count(**{f"{destination.name}.skipped.{s.reason}": 1 for s in plan.skipped})
        for change in changes:
            self._count(**{f"{destination.name}.{change.action}": 1})
        if len(self.result.changes) < DETAIL_LIMIT:
            self.result.changes.extend(changes[:DETAIL_LIMIT - len(self.result.changes)])
        if self.options.dry_run or not changes:
            return
        self._record(destination.name, destination.push(changes))

    def _drop_known_rejections(self, name: str, plan: Plan) -> list[Change]:
        """A permanent rejection is retried only when the person's data (fingerprint) changes."""
        known = self.state.rejections(name, {c.person_id for c in plan.changes})
        kept = [c for c in plan.changes if known.get(c.person_id) != ("permanent", c.fingerprint)]
        self._count(**{f"{name}.still_rejected": len(plan.changes) - len(kept)})
        return kept

    def _record(self, name: str, outcomes: list[Outcome]) -> None:
        now = int(self.clock.now())
        with self.state.transaction():
            done = [o for o in outcomes if o.ok]
            self.state.record_pushed(name, [(o.change.person_id, o.change.fingerprint,
                                             {**o.change.record, **o.record_updates}) for o in done])
            self.state.clear_rejections(name, [o.change.person_id for o in done])
            for outcome in outcomes:
                if not outcome.ok:
                    self._reject(name, outcome, now)
        self._count(**{f"{name}.done": len(done), "pushed": len(done)})

    def _reject(self, name: str, outcome: Outcome, now: int) -> None:
        change = outcome.change
        self.state.record_rejection(name, change.person_id, outcome.kind, outcome.reason,
                                    change.fingerprint, change.email, self.result.run_id, now)
        self._count(rejected=1, **{f"{name}.rejected.{outcome.kind}": 1})
        if len(self.result.rejections) < DETAIL_LIMIT:
            self.result.rejections.append({"destination": name, "contact_id": change.person_id,
                                           "email": change.email, "kind": outcome.kind,
                                           "reason": outcome.reason})

    def _remember_rows(self, people: Iterable[Person]) -> None:
        for person in people:
            if len(self.result.people) >= DETAIL_LIMIT:
                return
            deal = person.deal
            self.result.people.append(PersonRow(
                contact_id=person.contact_id, email=person.email, stage=person.stage.value,
                tag=self.config.tags[person.stage], deal=deal.name if deal else None,
                deal_id=deal.id if deal else None))

    def _count(self, **amounts: int) -> None:
        for key, amount in amounts.items():
            if amount:
                self.result.counts[key] += amount
