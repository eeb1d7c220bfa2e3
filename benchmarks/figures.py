"""What one measured run yields: wall, CPU, memory, requests per vendor, the Kommo floor, the
Kommo busy share, the tail after the last page and one job round."""

from __future__ import annotations

import math
import re
import resource
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from jobs import Job, job_round, last_page_end
from measure import current_rss_mb
from stack import APIS, Stamp

from kommo_sync.clock import Clock

PAGE = 250
EVENTS_PAGE = 100
DESTINATION_APIS = ("mailchimp", "klaviyo")
FEEDBACK_KINDS = ("unsubscribes", "cleans", "suppressions")
ID_SEGMENT = re.compile(r"^(?=.*\d)[A-Za-z0-9_.-]{5,}$")
ONE_CONTACT = re.compile(r"^/api/v4/contacts/\d+$")
KOMMO_PATHS = {
    "/api/v4/contacts": "contacts",
    "/api/v4/leads": "leads",
    "/api/v4/companies": "companies",
    "/api/v4/events": "events",
    "/api/v4/leads/pipelines": "pipelines",
    "/api/v4/contacts/custom_fields": "custom fields",
}
# Kommo endpoint -> (RunResult count of its items, page size, a list read to its end)
ITEM_ROWS = {
    "leads": ("pulled_leads", PAGE, True),
    "contacts": ("pulled_contacts", PAGE, True),
    "contacts by id": ("contacts_by_id", PAGE, False),
    "companies": ("pulled_companies", PAGE, True),
    "events": ("pulled_events", EVENTS_PAGE, True),
}


@dataclass
class Traffic:
    reads: int = 0
    writes: int = 0
    refused: int = 0

    @property
    def total(self) -> int:
        return self.reads + self.writes


def traffic(stamps: list[Stamp]) -> Traffic:
    result = Traffic()
    for stamp in stamps:
        if stamp.request.is_write:
            result.writes += 1
        else:
            result.reads += 1
        result.refused += stamp.request.status == 429
    return result


@dataclass
class Cost:
    """Wall, CPU and memory of one measured stretch (this process: the sandboxes are apart)."""

    wall: float = 0.0
    cpu: float = 0.0
    thread_cpu: float = 0.0
    rss_start_mb: float = 0.0
    peak_rss_mb: float = 0.0
    started: float = 0.0  # monotonic, as the stamps


def reset_peak_rss() -> None:
    """Linux resets the process's peak RSS (ru_maxrss) on `5` in clear_refs, so each run has
    its own."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass


@contextmanager
def measured() -> Iterator[Cost]:
    reset_peak_rss()
    clock = Clock()
    cost = Cost(rss_start_mb=current_rss_mb(), started=clock.monotonic())
    cpu, thread_cpu = time.process_time(), time.thread_time()
    yield cost
    cost.wall = clock.monotonic() - cost.started
    cost.cpu = time.process_time() - cpu
    cost.thread_cpu = time.thread_time() - thread_cpu
    cost.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def list_pages(items: int, size: int) -> int:
    """Requests to read a list to its end: every full page, then the short (or empty) last one."""
    return items // size + 1


def batches(items: int, size: int) -> int:
    return math.ceil(items / size)


def kommo_minimum(
    counts: Counter[str], sent: Counter[str], events_used: bool, field_count: int
) -> dict[str, int]:
    """The fewest Kommo requests that fetch the items this run needed: every page full, each
    list read to its (short or empty) last page, reads by id in full batches; requests we cannot
    judge (notes written back, account reads) count as they were sent."""
    minimum = {
        "pipelines": 1,
        "custom fields": list_pages(field_count, PAGE),
        "other": sent["other"],
    }
    for row, (key, size, listed) in ITEM_ROWS.items():
        minimum[row] = list_pages(counts[key], size) if listed else batches(counts[key], size)
    if not events_used:
        minimum["events"] = 0
    return minimum


def endpoint(stamp: Stamp) -> str:
    """Method and path with ids collapsed: `POST /api/lists/{id}/relationships/profiles`."""
    parts = stamp.request.path.split("/")
    return f"{stamp.request.method} " + "/".join(
        "{id}" if ID_SEGMENT.match(part) else part for part in parts
    )


def feedback_kind(stamp: Stamp) -> str | None:
    """Which feedback poll a request is (unsubscribes, cleans, suppressions, activity), or None:
    one page of each per run whatever changed, so they are counted apart from the pushing."""
    request = stamp.request
    if request.method != "GET":
        return None
    query = {key: values[0] for key, values in request.query.items() if values}
    if "since_last_changed" in query:
        return {"unsubscribed": "unsubscribes", "cleaned": "cleans"}.get(query.get("status", ""))
    window = query.get("filter", "")
    if "suppression.timestamp" in window and "less-or-equal(" in window:
        return "suppressions"  # the feedback window; other suppression reads guard subscribes
    activity = "/email-activity" in request.path or request.path.endswith("/api/events")
    return "activity" if activity or query.get("status") == "sent" else None


def kommo_endpoint(stamp: Stamp) -> str:
    path = stamp.request.path.rstrip("/")
    if ONE_CONTACT.match(path):
        return "contacts by id"
    name = KOMMO_PATHS.get(path, "other")
    by_id = any(key.startswith("filter[id]") for key in stamp.request.query)
    return "contacts by id" if name == "contacts" and by_id else name


def busy_seconds(stamps: list[Stamp]) -> float:
    """Seconds during which at least one of these requests was in flight."""
    busy, reach = 0.0, -math.inf
    for stamp in sorted(stamps, key=lambda s: s.start):
        if stamp.end > reach:
            busy += stamp.end - max(stamp.start, reach)
            reach = stamp.end
    return busy


@dataclass
class Figures:
    """What one run (or the baseline) measured, kept for the targets and the comparison."""

    label: str
    kind: str  # "first", "incremental", "unchanged" or "baseline"
    size: int  # contacts seeded (first) or contacts edited (incremental)
    cost: Cost
    pace: float  # the client's Kommo requests per second
    stamps: dict[str, list[Stamp]]
    changed: int
    kommo_minimum: dict[str, int]
    jobs: list[Job] = field(default_factory=list)
    items: dict[str, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # RunResult.counts (ours only)

    @property
    def traffic(self) -> dict[str, Traffic]:
        return {api: traffic(self.stamps[api]) for api in APIS}

    @property
    def kommo_sent(self) -> Counter[str]:
        return Counter(map(kommo_endpoint, self.stamps["kommo"]))

    @property
    def feedback(self) -> Counter[str]:
        stamps = self.stamps["mailchimp"] + self.stamps["klaviyo"]
        return Counter(kind for kind in map(feedback_kind, stamps) if kind)

    @property
    def destination_requests(self) -> int:
        return sum(len(self.stamps[api]) for api in DESTINATION_APIS)

    @property
    def pushing(self) -> int:
        """Mailchimp + Klaviyo requests other than the feedback reads."""
        return self.destination_requests - sum(self.feedback.values())

    @property
    def destination_writes(self) -> int:
        return sum(self.traffic[api].writes for api in DESTINATION_APIS)

    @property
    def minimum(self) -> int:
        return sum(self.kommo_minimum.values())

    @property
    def floor(self) -> float:
        """The paced floor: the minimum Kommo requests at the client's configured pace."""
        return self.minimum / self.pace

    @property
    def last_page(self) -> float | None:
        return last_page_end(self.stamps["kommo"])

    @property
    def tail(self) -> float:
        """Seconds from the last Kommo list page to the run's end (the whole run without one)."""
        last = self.last_page
        return self.cost.wall - (last - self.cost.started) if last is not None else self.cost.wall

    @property
    def kommo_busy_share(self) -> float:
        return busy_seconds(self.stamps["kommo"]) / self.cost.wall if self.cost.wall else 0.0

    @property
    def job_round(self) -> Job | None:
        return job_round(self.jobs, self.last_page)

    @property
    def job_round_seconds(self) -> float:
        job = self.job_round
        return job.seconds if job else 0.0

    def per_thousand(self, requests: int) -> float | None:
        return 1000 * requests / self.changed if self.changed else None
