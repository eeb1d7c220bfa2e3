"""Local scale: map + diff + state write for 1,000,000 synthetic contacts. No network.

    .venv/bin/python benchmarks/state_scale.py --contacts 1000000
    .venv/bin/python benchmarks/state_scale.py --contacts 100000 --profile   # where the time goes

Three phases, each doing what a sync does per page or batch, minus the HTTP:
1. mirror: synthetic Contact and Lead records stream in pages of 250 (never the whole account in
   memory); each page is diffed against the mirror (as the engine does) and written in one
   transaction (upsert_contacts, upsert_leads, mark_dirty).
2. first plan: for batches of 2000 from the queue (`ready_batches`): people from the mirror
   (contacts, same-email neighbours, leads, company names), the Mailchimp and the Klaviyo `plan`
   against an empty pushed state (every person a create), then `record_pushed`,
   `clear_rejections` and `clear_dirty` in one transaction.
3. full re-plan: a settings change (every stage tag renamed) queues everyone again
   (`mark_all_dirty`) and both destinations plan every person against what was pushed.
Then the Kommo JSON parse cost, apart (scale_parse.py): phase 1 builds its records directly.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from measure import current_rss_mb  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from scale_account import PAGE, Account, Page, catalog  # noqa: E402 (after sys.path)
from scale_parse import SAMPLE, ParseCost, parse_cost  # noqa: E402 (after sys.path)

from kommo_sync.clock import Clock  # noqa: E402 (after sys.path)
from kommo_sync.config import DEFAULT_TAGS  # noqa: E402 (after sys.path)
from kommo_sync.destinations.base import Destination  # noqa: E402 (after sys.path)
from kommo_sync.destinations.klaviyo import KlaviyoDestination  # noqa: E402 (after sys.path)
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig  # noqa: E402 (after sys.path)
from kommo_sync.destinations.mailchimp import MailchimpDestination  # noqa: E402 (after sys.path)
from kommo_sync.destinations.mailchimp.config import MailchimpConfig  # noqa: E402 (after sys.path)
from kommo_sync.destinations.mailchimp.operations import operation_of  # noqa: E402 (after sys.path)
from kommo_sync.http import HttpClient  # noqa: E402 (after sys.path)
from kommo_sync.mirror import mirror_contacts, mirror_leads, people_of  # noqa: E402 (after sys.path)
from kommo_sync.model import Company, Person, Stage  # noqa: E402 (after sys.path)
from kommo_sync.plan import STATUS, Change  # noqa: E402 (after sys.path)
from kommo_sync.state import State, company_to_row  # noqa: E402 (after sys.path)

T = TypeVar("T")
BATCH = 2000
TARGET_REPLAN_SECONDS = 60
TARGET_RSS_MB = 200


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


# phases 2 and 3: people, plan, record ---------------------------------------------------------
def destinations(tags: dict[Stage, str]) -> list[Destination]:
    """Mailchimp and Klaviyo, wired to a client that is never called (planning is local)."""
    clock = Clock()
    unused = HttpClient(base_url="http://127.0.0.1:9", vendor="never called", clock=clock)
    mailchimp = MailchimpConfig(
        api_key="sandbox-benchmark-key-us1", list_id="bench0001", base_url="http://127.0.0.1:9/3.0"
    )
    klaviyo = KlaviyoConfig(api_key="pk_bench_0001", list_id="Bench1")
    return [
        MailchimpDestination(mailchimp, dict(tags), unused, unused, clock),
        KlaviyoDestination(klaviyo, dict(tags), unused, clock),
    ]


def renamed_tags() -> dict[Stage, str]:
    """A settings change that touches everyone: every stage tag renamed."""
    return {stage: f"{name} (renamed)" for stage, name in DEFAULT_TAGS.items()}


def plan_all(state: State, targets: list[Destination]) -> tuple[int, int]:
    """(people planned, changes recorded) over the whole queue, 2000 contacts a batch, for
    every destination, as the engine's batches do it (the push left out: every change done)."""
    stages, people_count, recorded = catalog(), 0, 0
    for batch in state.ready_batches(BATCH):
        seq = state.dirty_seq()
        people = people_of(state, batch, stages, state.company_names)
        planned = [(d, plan_batch(state, d, people)) for d in targets]
        with state.transaction():
            for destination, changes in planned:
                rows = [pushed_row(destination, change) for change in changes]
                state.record_pushed(destination.name, rows)
                state.clear_rejections(destination.name, [c.person_id for c in changes])
            state.clear_dirty(batch, seq)
        people_count += len(people)
        recorded += sum(len(changes) for _, changes in planned)
    return people_count, recorded


def replan_all(state: State) -> tuple[int, int]:
    """A settings change: everyone queued again and planned against what was pushed."""
    with state.transaction():
        state.mark_all_dirty()
    return plan_all(state, destinations(renamed_tags()))


def plan_batch(state: State, destination: Destination, people: list[Person]) -> list[Change]:
    """The engine's `_plan`: pushed state, suppressions, the pure plan, known rejections."""
    pushed = state.pushed(destination.name, [p.contact_id for p in people])
    suppressed = state.suppressed(p.email for p in people if p.email)
    plan = destination.plan(people, pushed, suppressed)
    known = state.rejections(destination.name, {c.person_id for c in plan.changes})
    return [c for c in plan.changes if known.get(c.person_id) != ("permanent", c.fingerprint)]


def pushed_row(destination: Destination, change: Change) -> tuple[int, str, dict[str, object]]:
    """What the engine records after a success: the record (plus, in Mailchimp, the status)."""
    if destination.name != "mailchimp":
        return change.person_id, change.fingerprint, dict(change.record)
    status = operation_of(change).body().get("status_if_new")
    return change.person_id, change.fingerprint, {**change.record, STATUS: status}


# measuring and reporting --------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    seconds: float
    rss_mb: float


def timed(name: str, work: Callable[[], T]) -> tuple[Phase, T]:
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
        first, (people, recorded) = timed(
            "first plan, both destinations (people, plan, record)",
            lambda: plan_all(state, destinations(dict(DEFAULT_TAGS))),
        )
        replan, (replanned, rerecorded) = timed(
            "full re-plan after a settings change, both destinations",
            lambda: replan_all(state),
        )
    facts = {
        "contacts written": written,
        "people planned": people,
        "changes recorded": recorded,
        "people re-planned": replanned,
        "changes re-recorded": rerecorded,
        "state file MB": round(path.stat().st_size / 2**20),
    }
    report(size, [mirror, first, replan], facts)
    print_parse_cost(size, parse_cost(min(SAMPLE, size)))


def report(size: int, phases: list[Phase], facts: dict[str, int]) -> None:
    cpu = time.process_time()
    print(f"state_scale: {size:,} synthetic contacts, pages of {PAGE}, batches of {BATCH}")
    print("  " + ", ".join(f"{name} {value:,}" for name, value in facts.items()))
    for phase in phases:
        print(
            f"  {phase.name:<58}{phase.seconds:>8.1f} s {size / phase.seconds:>10,.0f} contacts/s  "
            f"(RSS after: {phase.rss_mb:.0f} MB)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  CPU {cpu:.1f} s; peak RSS {peak:.0f} MB (ru_maxrss)")
    replan = phases[-1].seconds * 1_000_000 / size
    print(
        f"targets: full re-plan of 1,000,000 people, both destinations, {replan:.1f} s "
        f"(scaled from {size:,}) <= {TARGET_REPLAN_SECONDS} s -> "
        f"{'met' if replan <= TARGET_REPLAN_SECONDS else 'MISSED'};  "
        f"peak RSS {peak:.0f} MB <= {TARGET_RSS_MB} MB -> "
        f"{'met' if peak <= TARGET_RSS_MB else 'MISSED'}"
    )


def print_parse_cost(size: int, cost: ParseCost) -> None:
    """The Kommo JSON parse cost, apart: the phases above build records without parsing."""
    print(
        f"Kommo JSON parse (apart; json.loads + parse_contact / parse_lead over "
        f"{cost.contacts:,} contacts and {cost.leads:,} leads of realistic raw pages, "
        f"{cost.kb:,.0f} KB): {cost.contact_us:.1f} us per contact, {cost.lead_us:.1f} us per "
        f"lead -> {cost.seconds(size):.1f} s for {size:,} contacts and their leads"
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
