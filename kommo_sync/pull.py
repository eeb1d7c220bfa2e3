"""Kommo's changed companies, leads and contacts into the mirror, and people out of it.

Companies are read first (a company edited re-plans its contacts in the same run), then leads,
so a contact's leads are all in the mirror when it is planned. A first sync reads no lead list:
the leads each page of contacts names are read by id as the contacts come, so the first batches
are planned and pushed while the pull goes on (reading every lead first left the vendors idle
for the first half of the pull). On any run, leads a contact names that the mirror lacks are
read by id before it is planned. Pages are read ahead on their own thread (Kommo's pacing is
the floor of every run); companies and leads by id are fetched in full pages of 250, so they
cost the fewest Kommo requests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kommo_sync import window
from kommo_sync.field_reader import FieldReader
from kommo_sync.kommo import KommoClient
from kommo_sync.kommo_records import (
    FieldMap,
    contact_lead_ids,
    parse_company,
    parse_contact,
    parse_lead,
)
from kommo_sync.mirror import mirror_companies, mirror_contacts, mirror_leads, people_of
from kommo_sync.model import Catalog, Lead, Person
from kommo_sync.pipeline import read_ahead
from kommo_sync.state import StateStore
from kommo_sync.tally import Tally

READ_AHEAD_PAGES = 40  # pages of 250: two batches of contacts
BY_ID_PAGE = 250  # companies and leads read by id, a request


class Pull:
    def __init__(
        self,
        state: StateStore,
        kommo: KommoClient,
        tally: Tally,
        pipelines: Sequence[str | int] = (),
    ):
        self.state, self.kommo, self.tally, self.pipelines = state, kommo, tally, pipelines
        self.catalog = Catalog()
        self.fields = FieldMap()
        self.reader: FieldReader | None = None  # the field map's, set once a run
        self.companies_seen: set[int] = set()
        self.companies_missing: set[int] = set()
        self.leads_named: set[int] = set()  # named by contacts read this run
        self.leads_missing: set[int] = set()  # of those, to read by id before planning
        self.first_sync = False

    def read(self, since: int, until: int, after_contacts: Callable[[], None]) -> None:
        """Every company, lead and contact changed in (since, until]; `after_contacts` runs
        after each page of contacts (to plan the batches that are complete), then the queued
        contacts missing from the mirror are read by id."""
        for page in self.kommo.changed("companies", since, until):
            self._store_companies(page, requeue=True)
        self.first_sync = since == 0 and self.state.cursor(window.CONTACTS) is None
        if not self.first_sync:
            for page in read_ahead(self.kommo.changed("leads", since, until), READ_AHEAD_PAGES):
                self.store_leads(page)
        for page in read_ahead(self.kommo.changed("contacts", since, until), READ_AHEAD_PAGES):
            self.store_contacts(page)
            after_contacts()
        missing = self.state.dirty_missing_from_mirror()
        returned: set[int] = set()
        for page in self.kommo.by_ids("contacts", missing):
            returned |= {raw["id"] for raw in page}
            self.store_contacts(page, count_as="contacts_by_id")
        self._unqueue_gone([cid for cid in missing if cid not in returned])

    def _unqueue_gone(self, contact_ids: list[int]) -> None:
        """Queued contacts Kommo no longer returns by id have nothing to plan: they leave the
        queue (their deletion is the lifecycle read's, or `reconcile --kommo`'s)."""
        if contact_ids:
            with self.state.transaction():
                self.state.clear_dirty(contact_ids, self.state.dirty_seq())
            self.tally.count(queued_gone_from_kommo=len(contact_ids))

    def store_leads(self, page: list[dict[str, Any]]) -> None:
        leads = [parse_lead(raw) for raw in page]
        if self.pipelines:
            leads = [lead for lead in leads if self.selected(lead)]
        self.tally.count(pulled_leads=len(page), changed_leads=mirror_leads(self.state, leads))

    def leads(self, ids: set[int]) -> dict[int, Lead]:
        """Leads by id from the mirror, those it lacks read from Kommo first."""
        leads = self.state.known_leads(ids)
        missing = ids - set(leads)
        self._fetch_leads(missing)
        leads.update(self.state.known_leads(missing))
        return leads

    def selected(self, lead: Lead) -> bool:
        """Whether the lead is in a pipeline `kommo.pipelines` names (every lead without it)."""
        wanted = self.pipelines
        return (
            not wanted
            or lead.pipeline_id in wanted
            or self.catalog.pipeline_name(lead.pipeline_id) in wanted
        )

    def complete_leads(self) -> None:
        """Read the leads still missing for the contacts read so far (before they are planned,
        and before the queue's position is taken: the leads re-queue their contacts)."""
        if self.leads_missing:
            self._fetch_leads(set(self.leads_missing))

    def people(self, contact_ids: list[int]) -> list[Person]:
        return people_of(self.state, contact_ids, self.catalog, self._company_names, self.reader)

    def people_by_contact(self, contact_ids: set[int]) -> dict[int, Person]:
        people = self.people(sorted(contact_ids)) if contact_ids else []
        return {cid: person for person in people for cid in person.contact_ids}

    def store_contacts(self, page: list[dict[str, Any]], count_as: str = "pulled_contacts") -> None:
        contacts = [parse_contact(raw, self.fields) for raw in page]
        changed = mirror_contacts(self.state, contacts)
        self.tally.count(**{count_as: len(page), "changed_contacts": changed})
        self._want_companies({c.company_id for c in contacts if c.company_id})
        self._want_leads({lead_id for raw in page for lead_id in contact_lead_ids(raw)})

    def _want_leads(self, ids: set[int]) -> None:
        """Leads these contacts name, to read by id in full pages of 250: on a first sync every
        one (a crashed first sync's mirror may hold stale ones), else those the mirror lacks."""
        new = ids - self.leads_named
        self.leads_named |= new
        self.leads_missing |= new if self.first_sync else new - set(self.state.lead_rows(new))
        while len(self.leads_missing) >= BY_ID_PAGE:
            self._fetch_leads(set(sorted(self.leads_missing)[:BY_ID_PAGE]))

    def _fetch_leads(self, ids: set[int]) -> None:
        for page in self.kommo.by_ids("leads", ids):
            self.store_leads(page)
        self.leads_missing -= ids

    def _want_companies(self, ids: set[int]) -> None:
        """Collect company ids whose names are unknown and fetch them in full pages of 250; the
        rest is fetched when needed."""
        new = ids - self.companies_seen
        self.companies_seen |= new
        self.companies_missing |= new - set(self.state.company_names(new))
        while len(self.companies_missing) >= BY_ID_PAGE:
            self._fetch_companies(set(sorted(self.companies_missing)[:BY_ID_PAGE]))

    def _company_names(self, ids: set[int]) -> dict[int, str]:
        """Names from the state, fetching the unknown ones from Kommo."""
        names = self.state.company_names(ids)
        return {**names, **self._fetch_companies(ids - set(names))}

    def _fetch_companies(self, ids: set[int]) -> dict[int, str]:
        """Companies by id, stored whole; their contacts are being planned already."""
        fetched: dict[int, str] = {}
        for page in self.kommo.by_ids("companies", ids):
            fetched.update(self._store_companies(page, requeue=False))
        self.companies_missing -= ids
        return fetched

    def _store_companies(self, page: list[dict[str, Any]], requeue: bool) -> dict[int, str]:
        companies = [parse_company(raw) for raw in page]
        changed = mirror_companies(self.state, companies, requeue)
        self.companies_seen |= {c.id for c in companies}
        self.tally.count(pulled_companies=len(page), changed_companies=changed)
        return {c.id: c.name for c in companies}
