"""How Kommo records are stored in the mirror: field values as compact JSON, in declaration
order, so a page can be compared with the mirror on the encoded form without decoding it."""

from __future__ import annotations

import json
from dataclasses import fields
from operator import attrgetter
from typing import Any

from kommo_sync.encoding import compact_json
from kommo_sync.model import Contact, Lead

ContactRow = tuple[
    int, int, "str | None", "int | None", str
]  # id, updated_at, email, company, data
LeadRow = tuple[int, int, str]  # id, updated_at, data
CONTACT_FIELDS = tuple(f.name for f in fields(Contact))
LEAD_FIELDS = tuple(f.name for f in fields(Lead))
_contact_values = attrgetter(*CONTACT_FIELDS)
_lead_values = attrgetter(*LEAD_FIELDS)
encode_record = compact_json()  # a record's field values, in declaration order: the mirror's format
encode_sorted = compact_json(sort_keys=True)  # what was pushed, keys sorted
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, not in the stubs


def decode_record(data: str) -> list[Any]:
    """A mirror row back to its field list, read by the JSON scanner itself (we wrote the row)."""
    try:
        return _scan_json(data, 0)[0]
    except StopIteration as err:
        raise json.JSONDecodeError("Expecting value", data, err.value) from None


def contact_to_row(contact: Contact) -> ContactRow:
    return (
        contact.id,
        contact.updated_at,
        contact.email,
        contact.company_id,
        encode_record(_contact_values(contact)),
    )


def contact_from_json(data: str) -> Contact:
    values = decode_record(data)
    values[4] = tuple(values[4])  # emails
    return Contact(*values)


def lead_to_row(lead: Lead) -> LeadRow:
    return lead.id, lead.updated_at, encode_record(_lead_values(lead))


def lead_from_json(data: str) -> Lead:
    values = decode_record(data)
    values[7] = tuple(values[7])  # contact_ids
    return Lead(*values)
