"""A deterministic synthetic Kommo account for state_scale.py, produced one page at a time
(never the whole account in memory): contacts with messy-enough fields, ~2 % sharing an
address, 0-3 leads each over every kind of stage, companies for 80 % of them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from kommo_sync.model import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    Catalog,
    Contact,
    Lead,
    Pipeline,
    Status,
)

PAGE = 250
BATCH = 2000
PIPELINE_ID = 7001
STATUS_IDS = (70010, 70011, 70012, 70013, WON_STATUS_ID, LOST_STATUS_ID)
FIRST_NAMES = (
    "Anna",
    "Lukas",
    "Sofia",
    "Jonas",
    "Emma",
    "Leon",
    "Mia",
    "Finn",
    "Léa",
    "Zofia",
    "Kenji",
    "Amara",
)
LAST_NAMES = (
    "Müller",
    "Schmidt",
    "Smith",
    "García",
    "Rossi",
    "Nowak",
    "Chen",
    "Okafor",
    "de Vries",
    "O'Brien",
)
SOURCES = ("Website", "Referral", "Trade show", "Google Ads", None, None)
LEADS_PER_CONTACT = (0, 1, 1, 1, 1, 2, 2, 3, 0, 1)
NOW = 1_790_000_000


def catalog() -> Catalog:
    statuses = (
        Status(70010, PIPELINE_ID, "Incoming leads", 10, type=1),
        Status(70011, PIPELINE_ID, "Qualified", 20),
        Status(70012, PIPELINE_ID, "Proposal", 30),
        Status(70013, PIPELINE_ID, "Negotiation", 40),
        Status(WON_STATUS_ID, PIPELINE_ID, "Closed - won", 10000),
        Status(LOST_STATUS_ID, PIPELINE_ID, "Closed - lost", 11000),
    )
    return Catalog({PIPELINE_ID: Pipeline(PIPELINE_ID, "Sales", statuses)})


# synthetic account, streamed ------------------------------------------------------------------
@dataclass
class Page:
    contacts: list[Contact]
    leads: list[Lead]


class Account:
    """A deterministic account of `size` contacts, produced one page at a time."""

    def __init__(self, size: int, seed: int):
        self.size, self.rng = size, random.Random(seed)
        self.companies = max(1, size // 5)
        self.next_lead = 1

    def pages(self) -> Iterator[Page]:
        for start in range(1, self.size + 1, PAGE):
            contacts = [self.contact(cid) for cid in range(start, min(start + PAGE, self.size + 1))]
            yield Page(contacts, [lead for c in contacts for lead in self.leads(c.id)])

    def contact(self, cid: int) -> Contact:
        rng = self.rng
        first, last = FIRST_NAMES[cid % len(FIRST_NAMES)], LAST_NAMES[cid * 7 % len(LAST_NAMES)]
        return Contact(
            id=cid,
            updated_at=NOW - cid % 86_400,
            first_name=first,
            last_name=last,
            emails=self.emails(cid),
            phone=f"+49 30 {1_000_000 + cid}" if rng.random() < 0.75 else None,
            company_id=1 + int(rng.random() * self.companies) if rng.random() < 0.8 else None,
            lead_source=SOURCES[cid % len(SOURCES)],
            consent=rng.random() < 0.6,
        )

    def emails(self, cid: int) -> tuple[str, ...]:
        """~10 % none; ~2 % share the address of a contact a little earlier
        (one person, two cards)."""
        roll = self.rng.random()
        if roll < 0.10:
            return ()
        owner = max(1, cid - 1 - int(self.rng.random() * 5000)) if roll < 0.12 else cid
        return (f"{FIRST_NAMES[owner % len(FIRST_NAMES)].lower()}.{owner}@firma{owner % 997}.de",)

    def leads(self, cid: int) -> Iterator[Lead]:
        for _ in range(LEADS_PER_CONTACT[int(self.rng.random() * len(LEADS_PER_CONTACT))]):
            lead_id, self.next_lead = self.next_lead, self.next_lead + 1
            yield Lead(
                id=lead_id,
                updated_at=NOW - lead_id % 86_400,
                name=f"Annual license #{lead_id}",
                price=100.0 * (lead_id % 500),
                pipeline_id=PIPELINE_ID,
                status_id=STATUS_IDS[int(self.rng.random() * len(STATUS_IDS))],
                created_at=NOW - 86_400,
                contact_ids=(cid,),
                main_contact_id=cid,
            )

    def company_names(self) -> Iterator[dict[int, str]]:
        for start in range(1, self.companies + 1, BATCH):
            yield {
                cid: f"{LAST_NAMES[cid % len(LAST_NAMES)]} GmbH {cid}"
                for cid in range(start, min(start + BATCH, self.companies + 1))
            }
