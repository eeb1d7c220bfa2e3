"""The Kommo JSON parse cost, measured apart: `json.loads` plus `parse_contact` / `parse_lead`
over realistic raw pages (the Kommo sandbox's, seeded by `seed_account`: messy emails, custom
fields, embedded leads and contacts), as the engine receives them.

The mirror phase of state_scale.py builds its records directly, so without this the local cost
of a sync would leave out the parsing a real pull does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from kommo_sync.clock import FakeClock
from kommo_sync.config import KommoConfig
from kommo_sync.kommo import resolve_fields
from kommo_sync.kommo_records import parse_contact, parse_lead
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.seed import seed_account
from kommo_sync.sandbox.server import Request

TOKEN = "scale-parse-token"
SAMPLE = 5_000
PASSES = 3


@dataclass(frozen=True)
class ParseCost:
    contacts: int
    leads: int
    kb: float  # raw JSON read per pass
    contact_us: float  # microseconds per contact (json.loads of its page share included)
    lead_us: float

    def seconds(self, contacts: int) -> float:
        """The parse time of an account of `contacts` with this sample's leads per contact."""
        per_contact = self.contact_us + self.lead_us * self.leads / max(1, self.contacts)
        return contacts * per_contact / 1e6


def raw_pages(sandbox: KommoSandbox, entity: str, embed: str) -> list[bytes]:
    """Every page of `entity` as the sandbox serves it (250 a page, `with=embed`)."""
    pages: list[bytes] = []
    page = 1
    headers = {"authorization": f"Bearer {TOKEN}"}
    while True:
        query = {"limit": ["250"], "page": [str(page)], "with": [embed]}
        response = sandbox.dispatch(Request("GET", f"/api/v4/{entity}", query, headers, b""))
        if response.status != 200:
            return pages
        pages.append(response.encode())
        page += 1


def parse_cost(sample: int = SAMPLE) -> ParseCost:
    sandbox = KommoSandbox(FakeClock(), token=TOKEN, rate_limit=None)
    seed_account(sandbox, sample)
    contacts, leads = (
        raw_pages(sandbox, "contacts", "leads"),
        raw_pages(sandbox, "leads", "contacts"),
    )
    config = KommoConfig("http://unused", TOKEN, "Email consent", "Lead source")
    fields = resolve_fields(config, list(sandbox.custom_fields.values()))
    contact_seconds = best_of(
        lambda: [parse_contact(r, fields) for p in contacts for r in items(p, "contacts")]
    )
    lead_seconds = best_of(lambda: [parse_lead(r) for p in leads for r in items(p, "leads")])
    kb = sum(map(len, contacts + leads)) / 1024
    return ParseCost(
        len(sandbox.contacts),
        len(sandbox.leads),
        kb,
        1e6 * contact_seconds / len(sandbox.contacts),
        1e6 * lead_seconds / max(1, len(sandbox.leads)),
    )


def items(page: bytes, entity: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads(page)["_embedded"][entity]
    return found


def best_of(work: Callable[[], object]) -> float:
    """The fastest of PASSES timings of `work()` (the least disturbed by the machine)."""
    timings = []
    for _ in range(PASSES):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)
