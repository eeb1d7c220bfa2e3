"""Small factories for pure tests: `contact(**overrides)`, `lead(**overrides)`, a catalog."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kommo_sync.model import Catalog, Contact, Lead, Pipeline, Status

SALES, PARTNERS = 100, 200
INCOMING, QUALIFIED, PROPOSAL = 1001, 1002, 1003
INTRO, CONTRACT = 2001, 2002
WON, LOST = 142, 143


def catalog() -> Catalog:
    """Sales has the unsorted stage on; Partners has it off (its first stage is the lowest sort)."""
    sales = Pipeline(
        SALES,
        "Sales",
        (
            Status(INCOMING, SALES, "Incoming leads", 10, type=1),
            Status(QUALIFIED, SALES, "Qualified", 20),
            Status(PROPOSAL, SALES, "Proposal", 30),
            Status(WON, SALES, "Closed - won", 10000),
            Status(LOST, SALES, "Closed - lost", 11000),
        ),
    )
    partners = Pipeline(
        PARTNERS,
        "Partners",
        (
            Status(CONTRACT, PARTNERS, "Contract", 40),
            Status(INTRO, PARTNERS, "Intro", 20),
            Status(WON, PARTNERS, "Partner signed", 10000),
            Status(LOST, PARTNERS, "Partner lost", 11000),
        ),
        is_unsorted_on=False,
    )
    return Catalog({SALES: sales, PARTNERS: partners})


_CONTACT = Contact(
    id=1,
    updated_at=1_700_000_000,
    first_name="Ada",
    last_name="Lovelace",
    emails=("ada@acme.io",),
    phone="+49 30 1234567",
    company_id=None,
    consent=True,
)
_LEAD = Lead(
    id=10,
    updated_at=1_700_000_000,
    name="Deal",
    price=1000,
    pipeline_id=SALES,
    status_id=QUALIFIED,
    contact_ids=(1,),
    main_contact_id=1,
)


def contact(**overrides: Any) -> Contact:
    return replace(_CONTACT, **overrides)


def lead(**overrides: Any) -> Lead:
    return replace(_LEAD, **overrides)
