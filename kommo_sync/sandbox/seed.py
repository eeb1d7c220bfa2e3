"""Realistic, deterministic data for the Kommo sandbox: messy emails and phones, shared
addresses, partial consent, and leads spread over every kind of stage.

`seed_account` fills an account; `mutate_fraction` then changes a share of it, as a day of
CRM work would, so incremental syncs have something to find.
"""

from __future__ import annotations

import gc
import random
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from kommo_sync.sandbox.kommo import LOST, WON, KommoSandbox

DAY = 86_400
FIRST_NAMES = (
    "Anna",
    "Lukas",
    "Sofia",
    "Jonas",
    "Emma",
    "Leon",
    "Mia",
    "Finn",
    "Hannah",
    "Paul",
    "Laura",
    "Felix",
    "Olivia",
    "Noah",
    "Amelia",
    "James",
    "Isabella",
    "Liam",
    "Charlotte",
    "Oliver",
    "Ava",
    "Lucas",
    "Chloe",
    "Mateo",
    "Valentina",
    "Diego",
    "Camila",
    "Hugo",
    "Léa",
    "Louis",
    "Chiara",
    "Marco",
    "Giulia",
    "Piotr",
    "Zofia",
    "Jan",
    "Eva",
    "Ahmed",
    "Fatima",
    "Yusuf",
    "Aisha",
    "Ravi",
    "Priya",
    "Wei",
    "Mei",
    "Kenji",
    "Yuki",
    "Olga",
    "Ivan",
    "Sven",
    "Ingrid",
    "Mohammed",
    "Sara",
    "David",
    "Elena",
    "Tomás",
    "Lucía",
    "Kofi",
    "Amara",
    "Niamh",
)
LAST_NAMES = (
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Becker",
    "Wagner",
    "Hoffmann",
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Davies",
    "Evans",
    "Martin",
    "Bernard",
    "Dubois",
    "Moreau",
    "Rossi",
    "Russo",
    "Ferrari",
    "García",
    "Fernández",
    "López",
    "Silva",
    "Santos",
    "Kowalski",
    "Nowak",
    "Novák",
    "Horvat",
    "Jansen",
    "de Vries",
    "Andersson",
    "Johansson",
    "Nielsen",
    "Hansen",
    "Ivanova",
    "Petrov",
    "O'Brien",
    "Murphy",
    "Khan",
    "Patel",
    "Singh",
    "Chen",
    "Wang",
    "Tanaka",
    "Sato",
    "Kim",
    "Park",
    "Nguyen",
    "Okafor",
    "Mensah",
    "Haddad",
    "Cohen",
    "Levi",
    "Yilmaz",
    "Demir",
    "Costa",
    "Meyer",
)
COMPANY_SUFFIXES = (
    "GmbH",
    "AG",
    "Ltd",
    "Inc",
    "LLC",
    "& Co",
    "Group",
    "Logistics",
    "Consulting",
    "Studio",
    "Solutions",
    "Partners",
    "Trading",
    "Software",
    "Bau",
)
FREE_MAIL = (
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "web.de",
    "gmx.de",
    "icloud.com",
    "hotmail.com",
    "mail.ru",
    "proton.me",
    "t-online.de",
)
BAD_EMAILS = (
    "john@@x",
    "test@example.com",
    "n/a",
    "info at firma.de",
    "mail@",
    "@gmail.com",
    "max.mustermann@gmail",
    "none",
)
LEAD_SOURCES = (
    "Website",
    "Referral",
    "Trade show",
    "Google Ads",
    "Facebook",
    "Cold call",
    "Partner",
    "Newsletter",
    "LinkedIn",
    "Webinar",
)
PRODUCTS = (
    "Annual license",
    "Website redesign",
    "Onboarding package",
    "Support contract",
    "Pilot project",
    "Hardware order",
    "Consulting days",
    "Renewal",
    "Upgrade",
    "Training",
)
GARBAGE_PHONES = ("n/a", "-", "call me", "0000", "see email")
LEADS_PER_CONTACT = (0, 1, 1, 1, 1, 2, 2, 3, 0, 1)
ASCII_FOLD = str.maketrans("üöäéáíóúñłç'", "uoaeaiounlc ")
NOT_IN_LOCAL_PART = re.compile(r"[^a-z0-9.]")
T = TypeVar("T")


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """rng.choice, several times faster (seeding draws millions of these)."""
    return items[int(rng.random() * len(items))]


def between(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in [low, high], faster than rng.randint."""
    return low + int(rng.random() * (high - low + 1))


@contextmanager
def bulk_load() -> Iterator[None]:
    """Pause the cyclic garbage collector while seeding allocates millions of acyclic dicts,
    then freeze them so later collections do not walk the whole store again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


@dataclass
class SeedInfo:
    """What seed_account created, for tests and benchmarks to aim at."""

    sales_pipeline_id: int
    partners_pipeline_id: int
    company_ids: list[int] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)
    lead_ids: list[int] = field(default_factory=list)
    consented_contact_ids: list[int] = field(default_factory=list)
    shared_email_contact_ids: list[int] = field(default_factory=list)
    working_stages: dict[int, list[int]] = field(default_factory=dict)


def seed_account(sandbox: KommoSandbox, n_contacts: int, seed: int = 1) -> SeedInfo:
    """Fill `sandbox` with two pipelines, companies, n_contacts contacts and their leads."""
    rng = random.Random(seed)
    now = int(sandbox.clock.now())
    info = SeedInfo(
        sandbox.add_pipeline("Sales", ["Qualified", "Proposal", "Negotiation"], is_main=True),
        sandbox.add_pipeline("Partners", ["Intro", "Contract"], unsorted=False),
    )
    info.working_stages = {
        pipeline_id: working_stages(sandbox, pipeline_id)
        for pipeline_id in (info.sales_pipeline_id, info.partners_pipeline_id)
    }
    emails: list[str] = []
    with bulk_load():
        info.company_ids = seed_companies(sandbox, rng, max(1, n_contacts // 5), now)
        for _ in range(n_contacts):
            contact_id = seed_contact(sandbox, rng, info, emails, now)
            seed_leads(sandbox, rng, info, contact_id, now)
    return info


def seed_companies(sandbox: KommoSandbox, rng: random.Random, count: int, now: int) -> list[int]:
    return [
        sandbox.add_company(
            f"{pick(rng, LAST_NAMES)} {pick(rng, COMPANY_SUFFIXES)}",
            created_at=now - between(rng, 400 * DAY, 800 * DAY),
        )
        for _ in range(count)
    ]


def seed_contact(
    sandbox: KommoSandbox, rng: random.Random, info: SeedInfo, emails: list[str], now: int
) -> int:
    """One contact with realistic (and realistically dirty) fields."""
    first, last = pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES)
    company_id = pick(rng, info.company_ids) if rng.random() < 0.8 else None
    email, shared = pick_email(rng, first, last, company_id, emails)
    consent = rng.random() < 0.6
    created = now - between(rng, 2 * DAY, 400 * DAY)
    contact_id = sandbox.add_contact(
        first,
        last if rng.random() < 0.95 else "",
        email=email,
        phone=pick_phone(rng),
        company_id=company_id,
        consent=consent,
        lead_source=pick(rng, LEAD_SOURCES) if rng.random() < 0.7 else None,
        extra_emails=(make_email(rng, first, last, None),) if rng.random() < 0.03 else (),
        created_at=created,
        updated_at=maybe_later(rng, created, now),
    )
    info.contact_ids.append(contact_id)
    if consent:
        info.consented_contact_ids.append(contact_id)
    if shared:
        info.shared_email_contact_ids.append(contact_id)
    return contact_id


def maybe_later(rng: random.Random, created: int, now: int) -> int | None:
    """For ~30 % of contacts, an edit some time after creation (else None: never edited)."""
    return created + between(rng, 0, now - created - DAY) if rng.random() < 0.3 else None


def pick_email(
    rng: random.Random, first: str, last: str, company_id: int | None, emails: list[str]
) -> tuple[str | None, bool]:
    """(email, reuses an earlier contact's address): ~90 % have one, some messy or invalid."""
    roll = rng.random()
    if roll < 0.10:
        return None, False
    if roll < 0.11:
        return pick(rng, BAD_EMAILS), False
    if roll < 0.13 and emails:
        shared = pick(rng, emails)
        return (shared.upper() if rng.random() < 0.5 else shared), True
    email = make_email(rng, first, last, company_id)
    emails.append(email)
    return messy(rng, email), False


def make_email(rng: random.Random, first: str, last: str, company_id: int | None) -> str:
    local = pick(
        rng,
        (
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}{between(rng, 1, 99)}",
            f"{last}.{first}",
        ),
    )
    local = NOT_IN_LOCAL_PART.sub("", ascii_fold(local).lower())
    domain = f"firma{company_id}.de" if company_id and rng.random() < 0.5 else pick(rng, FREE_MAIL)
    return f"{local}@{domain}"


def ascii_fold(text: str) -> str:
    return text.translate(ASCII_FOLD)


def messy(rng: random.Random, email: str) -> str:
    """Now and then the way people type addresses into a CRM: capitals, stray spaces."""
    roll = rng.random()
    if roll < 0.04:
        return email.upper() if roll < 0.02 else email.title()
    if roll < 0.07:
        return f"  {email} "
    return email


def pick_phone(rng: random.Random) -> str | None:
    """A phone in one of the many formats real CRMs collect, or garbage, or none."""
    roll = rng.random()
    digits = between(rng, 1_000_000, 9_999_999)
    if roll < 0.25:
        return None
    if roll < 0.45:
        return f"+49 30 {digits}"
    if roll < 0.60:
        return f"030 {digits}"
    if roll < 0.75:
        return f"(555) 010-{digits % 10_000:04d}"
    if roll < 0.85:
        return f"+1 212-555-{digits % 10_000:04d}"
    if roll < 0.95:
        return f"+44 20 7946 {digits % 10_000:04d}"
    return pick(rng, GARBAGE_PHONES)


def seed_leads(
    sandbox: KommoSandbox, rng: random.Random, info: SeedInfo, contact_id: int, now: int
) -> None:
    """0-3 leads for a contact: new, in progress, won or lost; a few shared with another."""
    contact_created = sandbox.contact(contact_id)["created_at"]
    for _ in range(pick(rng, LEADS_PER_CONTACT)):
        pipeline_id = info.sales_pipeline_id if rng.random() < 0.8 else info.partners_pipeline_id
        contacts = [contact_id]
        if rng.random() < 0.05 and len(info.contact_ids) > 1:
            contacts.append(info.contact_ids[int(rng.random() * (len(info.contact_ids) - 1))])
        created = between(rng, contact_created, now - DAY)
        lead_id = sandbox.add_lead(
            f"{pick(rng, PRODUCTS)} #{between(rng, 1000, 9999)}",
            100 * between(rng, 0, 499),
            pipeline_id,
            contact_ids=contacts,
            created_at=created,
        )
        target = pick_stage(rng, info.working_stages[pipeline_id])
        if target is not None:
            sandbox.move_lead(lead_id, target, at=between(rng, created, now - DAY // 2))
        info.lead_ids.append(lead_id)


def pick_stage(rng: random.Random, stages: list[int]) -> int | None:
    """Where a lead ends up: None stays new; else a working stage, won (142) or lost (143)."""
    roll = rng.random()
    if roll < 0.25:
        return None
    if roll < 0.60:
        return pick(rng, stages)
    return WON if roll < 0.80 else LOST


def working_stages(sandbox: KommoSandbox, pipeline_id: int) -> list[int]:
    """The regular stages of a pipeline: not Incoming leads, not 142/143."""
    return [
        s["id"]
        for s in sandbox.statuses(pipeline_id)
        if s["type"] == 0 and s["id"] not in (WON, LOST)
    ]


def mutate_fraction(sandbox: KommoSandbox, fraction: float, seed: int) -> list[int]:
    """Change that fraction of contacts (name, phone, consent or a lead's stage), at now.

    Returns the changed contact ids, sorted. A lead move changes only the lead: as in Kommo
    (pessimistically) the contact's updated_at stays as it was.
    """
    rng = random.Random(seed)
    with sandbox.lock:
        contact_ids = sorted(sandbox.contacts)
    chosen = sorted(rng.sample(contact_ids, round(len(contact_ids) * fraction)))
    for contact_id in chosen:
        mutation = pick(rng, (rename, rephone, toggle_consent, move_a_lead))
        mutation(sandbox, rng, contact_id)
    return chosen


def rename(sandbox: KommoSandbox, rng: random.Random, contact_id: int) -> None:
    sandbox.update_contact(contact_id, last_name=pick(rng, LAST_NAMES))


def rephone(sandbox: KommoSandbox, rng: random.Random, contact_id: int) -> None:
    phone = pick_phone(rng) or f"+49 40 {between(rng, 1_000_000, 9_999_999)}"
    sandbox.update_contact(contact_id, phone=phone)


def toggle_consent(sandbox: KommoSandbox, rng: random.Random, contact_id: int) -> None:
    sandbox.update_contact(contact_id, consent=not sandbox.consent(contact_id))


def move_a_lead(sandbox: KommoSandbox, rng: random.Random, contact_id: int) -> None:
    """Move one of the contact's open leads on (or close it); rename when none is open."""
    open_leads = [
        lead_id
        for lead_id in sandbox.contact(contact_id)["lead_ids"]
        if sandbox.lead(lead_id)["status_id"] not in (WON, LOST)
    ]
    if not open_leads:
        rename(sandbox, rng, contact_id)
        return
    lead = sandbox.lead(pick(rng, open_leads))
    stages = [s for s in working_stages(sandbox, lead["pipeline_id"]) if s != lead["status_id"]]
    sandbox.move_lead(lead["id"], pick(rng, stages + [WON, LOST]))
