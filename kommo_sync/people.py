"""From the mirror to people: contacts grouped by email, staged by their leads (pure)."""
from __future__ import annotations

from typing import Iterable, Mapping

from kommo_sync.model import Catalog, Contact, Lead, Person
from kommo_sync.stages import contact_stage, deal_of


def person_from_contacts(contacts: list[Contact], leads_by_contact: Mapping[int, list[Lead]],
                         companies: Mapping[int, str], catalog: Catalog) -> Person:
    """One person from the contacts that share an email; the more advanced stage decides.

    The person's identity is the lowest contact id of the group, which stays put while the group
    does; its fields come from the contact whose stage decided.
    """
    staged = []
    for contact in contacts:
        stage, lead = contact_stage(leads_by_contact.get(contact.id, ()), catalog)
        staged.append((stage.rank, lead.updated_at if lead else 0, -contact.id, contact, stage, lead))
    _, _, _, owner, stage, lead = max(staged, key=lambda item: item[:3])
    return Person(
        contact_id=min(c.id for c in contacts), email=owner.email,
        first_name=owner.first_name, last_name=owner.last_name, phone=owner.phone,
        company=companies.get(owner.company_id) if owner.company_id else None,
        lead_source=owner.lead_source, consent=_group_consent(contacts), stage=stage,
        deal=deal_of(lead, catalog), contact_ids=tuple(sorted(c.id for c in contacts)),
    )


def _group_consent(contacts: Iterable[Contact]) -> bool | None:
    """Consent of a person seen through several contacts: a checked box on any card counts.

    A duplicate card created later starts with the box unchecked (the field is absent), and a
    missing field is never a withdrawal; a withdrawal is every card of that email unchecked.
    """
    values = [c.consent for c in contacts]
    if all(v is None for v in values):
        return None
    return any(bool(v) for v in values)


def group_by_email(contacts: Iterable[Contact]) -> list[list[Contact]]:
    """Contacts sharing an email form one group; a contact without email stands alone."""
    groups: dict[object, list[Contact]] = {}
    for contact in contacts:
        key = contact.email or ("no-email", contact.id)
        groups.setdefault(key, []).append(contact)
    return list(groups.values())

