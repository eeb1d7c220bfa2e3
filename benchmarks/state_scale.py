"""Local scale: map + diff + state write for 1,000,000 synthetic contacts. No network.

    .venv/bin/python benchmarks/state_scale.py --contacts 1000000
    .venv/bin/python benchmarks/state_scale.py --contacts 100000 --profile   # where the time goes

Two phases, each doing what a first sync does per page or batch, minus the HTTP:
1. mirror: synthetic Contact and Lead records stream in pages of 250 (never the whole account in
   memory); each page is diffed against the mirror (as the engine does) and written in one
   transaction (upsert_contacts, upsert_leads, mark_dirty).
2. plan: for batches of 2000 from the queue (`ready_batches`): people from the mirror (contacts,
   same-email neighbours, leads, company names) through `person_from_contacts`, the Mailchimp
   `plan` against an empty pushed state (so every person is a create), then `record_pushed`,
   `clear_rejections` and `clear_dirty` in one transaction.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from measure import current_rss_mb  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from kommo_sync.clock import Clock  # noqa: E402 (after sys.path)
from kommo_sync.config import DEFAULT_TAGS  # noqa: E402 (after sys.path)
from kommo_sync.destinations.mailchimp import MailchimpDestination  # noqa: E402 (after sys.path)
from kommo_sync.destinations.mailchimp.config import MailchimpConfig  # noqa: E402 (after sys.path)
from kommo_sync.destinations.mailchimp.operations import operation_of  # noqa: E402 (after sys.path)
from kommo_sync.http import HttpClient  # noqa: E402 (after sys.path)
from kommo_sync.mirror import mirror_contacts, mirror_leads, people_of  # noqa: E402 (after sys.path)
from kommo_sync.model import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    Catalog,
    Company,
    Contact,
    Lead,
    Person,  # noqa: E402 (after sys.path)
    Pipeline,
    Status,
)
from kommo_sync.plan import STATUS, Change  # noqa: E402 (after sys.path)
from kommo_sync.state import State, company_to_row  # noqa: E402 (after sys.path)

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
TARGET_RATE = 50_000
TARGET_RSS_MB = 200


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


# phase 1: the mirror -----------------------------------------------------------------------------
def write_mirror(state: State, account: Account) -> int:
    """Every page diffed against the mirror and written in one transaction, as the engine does."""
    for names in account.company_names():
        with state.transaction():
            state.upsert_companies(
                company_to_row(Company(cid, 0, name)) for cid, name in names.items()
            )
    written = 0
    for page in account.pages():
        written += store_page(state, page)
    return written


def store_page(state: State, page: Page) -> int:
    """The engine's page store: leads first, then contacts, each diffed against the mirror."""
    mirror_leads(state, page.leads)
    return mirror_contacts(state, page.contacts)


# phase 2: people, plan, record ------------------------------------------------------------------
def mailchimp() -> MailchimpDestination:
    config = MailchimpConfig(
        api_key="sandbox-benchmark-key-us1", list_id="bench0001", base_url="http://127.0.0.1:9/3.0"
    )
    clock = Clock()
    unused = HttpClient(base_url=config.base_url, vendor="Mailchimp (never called)", clock=clock)
    return MailchimpDestination(config, dict(DEFAULT_TAGS), unused, unused, clock)


def plan_all(state: State, destination: MailchimpDestination) -> tuple[int, int]:
    """(people planned, changes recorded) over the whole queue, 2000 contacts a batch, as the
    engine's `_process_batch` does it (its push left out: every change counts as done)."""
    stages, people_count, recorded = catalog(), 0, 0
    for batch in state.ready_batches(BATCH):
        seq = state.dirty_seq()
        people = people_of(state, batch, stages, state.company_names)
        changes = plan_batch(state, destination, people)
        with state.transaction():
            state.record_pushed(destination.name, [pushed_row(change) for change in changes])
            state.clear_rejections(destination.name, [change.person_id for change in changes])
            state.clear_dirty(batch, seq)
        people_count, recorded = people_count + len(people), recorded + len(changes)
    return people_count, recorded


def plan_batch(
    state: State, destination: MailchimpDestination, people: list[Person]
) -> list[Change]:
    """The engine's `_plan`: pushed state, suppressions, the pure plan, known rejections."""
    pushed = state.pushed(destination.name, [p.contact_id for p in people])
    suppressed = state.suppressed(p.email for p in people if p.email)
    plan = destination.plan(people, pushed, suppressed)
    known = state.rejections(destination.name, {c.person_id for c in plan.changes})
    return [c for c in plan.changes if known.get(c.person_id) != ("permanent", c.fingerprint)]


def pushed_row(change: Change) -> tuple[int, str, dict[str, object]]:
    """What the engine records after a successful create: the record plus the member status."""
    status = operation_of(change).body().get("status_if_new")
    return change.person_id, change.fingerprint, {**change.record, STATUS: status}


# measuring and reporting --------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    seconds: float
    rss_mb: float


def timed(name: str, work: Callable[[], object]) -> tuple[Phase, object]:
    clock = Clock()
    started = clock.monotonic()
    value = work()
    return Phase(name, clock.monotonic() - started, current_rss_mb()), value


def run(size: int, seed: int, folder: Path) -> None:
    path = folder / "state.db"
    with State.open(path) as state:
        mirror, written = timed(
            "mirror write (diff + upsert + mark dirty)",
            lambda: write_mirror(state, Account(size, seed)),
        )
        plan, (people, recorded) = timed(
            "map + diff + state write (people, plan, record_pushed)",
            lambda: plan_all(state, mailchimp()),
        )
    report(
        size,
        [mirror, plan],
        {
            "contacts written": written,
            "people planned": people,
            "changes recorded": recorded,
            "state file MB": round(path.stat().st_size / 2**20),
        },
    )


def report(size: int, phases: list[Phase], facts: dict[str, int]) -> None:
    cpu = time.process_time()
    print(f"state_scale: {size:,} synthetic contacts, pages of {PAGE}, batches of {BATCH}")
    print("  " + ", ".join(f"{name} {value:,}" for name, value in facts.items()))
    for phase in phases:
        print(
            f"  {phase.name:<56}{phase.seconds:>8.1f} s {size / phase.seconds:>10,.0f} contacts/s  "
            f"(RSS after: {phase.rss_mb:.0f} MB)"
        )
    total = sum(p.seconds for p in phases)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = size / total
    print(f"  {'overall':<56}{total:>8.1f} s {rate:>10,.0f} contacts/s  (CPU {cpu:.1f} s)")
    print(f"  peak RSS {peak:.0f} MB (ru_maxrss)")
    print(
        f"targets: >= {TARGET_RATE:,} contacts/s overall -> "
        f"{'met' if rate >= TARGET_RATE else 'MISSED'};  "
        f"peak RSS <= {TARGET_RSS_MB} MB -> {'met' if peak <= TARGET_RSS_MB else 'MISSED'}"
    )


def profiled(size: int, seed: int, folder: Path, top: int) -> None:
    """The same work under cProfile; prints the hottest functions by own time and
    cumulative time."""
    profiler = cProfile.Profile()
    profiler.runcall(run, size, seed, folder)
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        print(f"\n-- cProfile, top {top} by {order} (times inflated by profiling)")
        print(out.getvalue().split("\n", 4)[-1].rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the state file goes (default: a temp dir)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="run under cProfile and print the hotspots"
    )
    parser.add_argument("--top", type=int, default=30, help="functions shown with --profile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kommo-sync-scale-", dir=args.state_dir) as folder:
        if args.profile:
            profiled(args.contacts, args.seed, Path(folder), args.top)
        else:
            run(args.contacts, args.seed, Path(folder))


if __name__ == "__main__":
    main()
