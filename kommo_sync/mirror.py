"""Kommo records into the local mirror, and people back out of it.

The mirror is what makes a run incremental: a page is compared with it record by record (on
the encoded form, so an overlap re-read costs no decoding), only what really changed is
written and queued, and people are rebuilt from it with all their leads and same-email twins.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from kommo_sync.field_reader import FieldReader
from kommo_sync.model import Catalog, Company, Contact, Lead, Person
from kommo_sync.people import ValuesOf, group_by_email, person_from_contacts
from kommo_sync.state import (
    StateStore,
    company_to_row,
    contact_from_json,
    contact_to_row,
    lead_from_json,
    lead_to_row,
)


def mirror_leads(state: StateStore, leads: list[Lead]) -> int:
    """Write the changed leads and queue their contacts (old and new); returns how many changed."""
    rows = {lead.id: lead_to_row(lead) for lead in leads}
    known = state.lead_rows(rows)
    changed = [lead for lead in leads if known.get(lead.id) != rows[lead.id][2]]
    touched = {cid for lead in changed for cid in lead.contact_ids}
    touched |= {
        cid
        for lead in changed
        if lead.id in known
        for cid in lead_from_json(known[lead.id]).contact_ids
    }
    with state.transaction():
        state.upsert_leads(changed, [rows[lead.id] for lead in changed])
        state.mark_dirty(touched)
    return len(changed)


def mirror_contacts(state: StateStore, contacts: list[Contact]) -> int:
    """Write the changed contacts and queue them; an email change also queues the contacts left
    at the old address (they may now be a person of their own). Returns how many changed."""
    rows = {c.id: contact_to_row(c) for c in contacts}
    known = state.contact_rows(rows)
    changed = [rows[c.id] for c in contacts if known.get(c.id) != rows[c.id][4]]
    old_contacts = [contact_from_json(known[row[0]]) for row in changed if row[0] in known]
    old_emails = {contact.email for contact in old_contacts if contact.email is not None}
    neighbours = [cid for ids in state.contact_ids_by_email(old_emails).values() for cid in ids]
    with state.transaction():
        state.upsert_contacts(changed)
        state.mark_dirty([row[0] for row in changed] + neighbours)
    return len(changed)


def mirror_companies(state: StateStore, companies: list[Company], requeue: bool = True) -> int:
    """Write the changed companies; with `requeue`, their mirrored contacts are planned again
    (a company renamed or edited changes what its people carry). Returns how many changed."""
    rows = {c.id: company_to_row(c) for c in companies}
    known = state.company_rows(rows)
    changed = [rows[c.id] for c in companies if known.get(c.id) != rows[c.id][3]]
    with state.transaction():
        state.upsert_companies(changed)
        if requeue and changed:
            state.mark_dirty(state.contacts_of_companies(row[0] for row in changed))
    return len(changed)


def people_of(
    state: StateStore,
    contact_ids: list[int],
    catalog: Catalog,
    company_names: Callable[[set[int]], dict[int, str]],
    reader: FieldReader | None = None,
) -> list[Person]:
    """The people these contacts belong to, each with every contact sharing its email (and,
    with a field map's `reader`, the values it maps)."""
    dirty = state.contacts(contact_ids)
    emails = {email for c in dirty.values() if (email := c.email)}
    group_ids = {cid for ids in state.contact_ids_by_email(emails).values() for cid in ids}
    contacts = {**state.contacts(group_ids - set(dirty)), **dirty}
    leads = state.leads_of(contacts)
    company_ids = {c.company_id for c in contacts.values() if c.company_id}
    companies = company_names(company_ids)
    values: ValuesOf | None = None
    if reader is not None and reader.resolved:
        records = state.companies(company_ids) if reader.needs_companies else {}
        values = partial(reader.values, companies=records)
    return [
        person_from_contacts(group, leads, companies, catalog, values)
        for group in group_by_email(contacts.values())
    ]
