"""From the mirror to people: contacts grouped by email, staged by their leads (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kommo_sync.model import Catalog, Contact, Lead, Person, Stage
from kommo_sync.stages import contact_stage, deal_of

ValuesOf = Callable[[Contact, Lead | None], Mapping[str, Any]]  # the field map's, per person


def person_from_contacts(
    contacts: list[Contact],
    leads_by_contact: Mapping[int, list[Lead]],
    companies: Mapping[int, str],
    catalog: Catalog,
    values: ValuesOf | None = None,
) -> Person:
    """One person from the contacts that share an email; the more advanced stage decides.

    The person's identity is the lowest contact id of the group, which stays put while the group
    does; its fields come from the contact whose stage decided.
    """
    owner, stage, lead = _deciding_contact(contacts, leads_by_contact, catalog)
    ids = sorted(c.id for c in contacts)
    return Person(
        contact_id=ids[0],
        email=owner.email,
        first_name=owner.first_name,
        last_name=owner.last_name,
        phone=owner.phone,
        company=companies.get(owner.company_id) if owner.company_id else None,
        lead_source=owner.lead_source,
        consent=_group_consent(contacts),
        stage=stage,
        deal=deal_of(lead, catalog),
        contact_ids=tuple(ids),
        values=values(owner, lead) if values else {},
    )


def _deciding_contact(
    contacts: list[Contact], leads_by_contact: Mapping[int, list[Lead]], catalog: Catalog
) -> tuple[Contact, Stage, Lead | None]:
    """The contact whose stage decides, with that stage and lead: the highest stage, then the most
    recently updated deciding lead, then the lowest contact id."""
    best: tuple[tuple[int, int, int], Contact, Stage, Lead | None] | None = None
    for contact in contacts:
        stage, lead = contact_stage(leads_by_contact.get(contact.id, ()), catalog)
        key = (stage.rank, lead.updated_at if lead else 0, -contact.id)
        if best is None or key > best[0]:
            best = (key, contact, stage, lead)
    if best is None:
        raise ValueError("a person needs at least one contact")
    return best[1], best[2], best[3]


def _group_consent(contacts: Iterable[Contact]) -> bool | None:
    """Consent of a person seen through several contacts: a checked box on any card counts.

    A duplicate card created later starts with the box unchecked (the field is absent), and a
    missing field is never a withdrawal; a withdrawal is every card of that email unchecked.
    """
    known = [c.consent for c in contacts if c.consent is not None]
    return any(known) if known else None


def group_by_email(contacts: Iterable[Contact]) -> list[list[Contact]]:
    """Contacts sharing an email form one group; a contact without email stands alone."""
    groups: dict[object, list[Contact]] = {}
    for contact in contacts:
        key = contact.email or ("no-email", contact.id)
        groups.setdefault(key, []).append(contact)
    return list(groups.values())
