"""How Kommo records are stored in the mirror: field values as compact JSON, in declaration
order, so a page can be compared with the mirror on the encoded form without decoding it."""

from __future__ import annotations

import json
from dataclasses import fields
from operator import attrgetter
from typing import Any

from kommo_sync.encoding import compact_json
from kommo_sync.model import Company, Contact, Lead

ContactRow = tuple[
    int, int, "str | None", "int | None", str
]  # id, updated_at, email, company, data
LeadRow = tuple[int, int, str]  # id, updated_at, data
CompanyRow = tuple[int, int, str, str]  # id, updated_at, name, data
CONTACT_FIELDS = tuple(f.name for f in fields(Contact))
LEAD_FIELDS = tuple(f.name for f in fields(Lead))
COMPANY_FIELDS = tuple(f.name for f in fields(Company))
_contact_values = attrgetter(*CONTACT_FIELDS)
_lead_values = attrgetter(*LEAD_FIELDS)
_company_values = attrgetter(*COMPANY_FIELDS)
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


def _tuples(values: list[Any], *positions: int) -> list[Any]:
    """JSON arrays back to the tuples the records hold (a row written before a field existed
    is shorter: its defaults apply)."""
    for position in positions:
        if position < len(values):
            values[position] = tuple(values[position])
    return values


_CONTACT_TUPLES = (CONTACT_FIELDS.index("emails"), CONTACT_FIELDS.index("tags"))
_LEAD_TUPLES = (LEAD_FIELDS.index("contact_ids"), LEAD_FIELDS.index("tags"))
_COMPANY_TUPLES = (COMPANY_FIELDS.index("tags"),)


def contact_from_json(data: str) -> Contact:
    return Contact(*_tuples(decode_record(data), *_CONTACT_TUPLES))


def lead_to_row(lead: Lead) -> LeadRow:
    return lead.id, lead.updated_at, encode_record(_lead_values(lead))


def lead_from_json(data: str) -> Lead:
    return Lead(*_tuples(decode_record(data), *_LEAD_TUPLES))


def company_to_row(company: Company) -> CompanyRow:
    return company.id, company.updated_at, company.name, encode_record(_company_values(company))


def company_from_json(data: str) -> Company:
    return Company(*_tuples(decode_record(data), *_COMPANY_TUPLES))
