"""Sync speed: kommo-sync against the three sandboxes in real time, next to a per-record baseline.

    .venv/bin/python benchmarks/sync_speed.py --contacts 10000

The Kommo, Mailchimp and Klaviyo sandboxes serve on 127.0.0.1 from a child process of their own
(the vendors' CPU is not ours: in one process their request handling would compete with the run
for the GIL), with 50-150 ms latency per request, Kommo's 7 requests/s (429 past it), Mailchimp's 10
simultaneous connections and Klaviyo's per-endpoint tiers. kommo-sync runs three times (first
full sync; incremental after 1 % of the contacts changed; nothing changed) with whatever
destinations `build_engine` wires from the config. Then the six-requests-per-contact baseline
runs on fresh sandboxes, and the two are compared as ratios measured side by side.

RSS and process CPU are kommo-sync's own (the benchmark's process); "run thread" CPU is the
thread that runs the sync.
"""

from __future__ import annotations

import argparse
import importlib
import math
import multiprocessing
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from measure import current_rss_mb  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from kommo_sync.app import build_engine  # noqa: E402 (after sys.path)
from kommo_sync.clock import Clock  # noqa: E402 (after sys.path)
from kommo_sync.config import Config, load_config  # noqa: E402 (after sys.path)
from kommo_sync.destinations.base import event_sinks  # noqa: E402 (after sys.path)
from kommo_sync.destinations.klaviyo.config import KLAVIYO_REVISION  # noqa: E402 (after sys.path)
from kommo_sync.destinations.mailchimp import mailchimp_http  # noqa: E402 (after sys.path)
from kommo_sync.destinations.mailchimp.mapping import subscriber_hash  # noqa: E402 (after sys.path)
from kommo_sync.errors import RecordRejected, RetryLater  # noqa: E402 (after sys.path)
from kommo_sync.http import HttpClient  # noqa: E402 (after sys.path)
from kommo_sync.kommo import KommoClient, kommo_http, resolve_fields  # noqa: E402 (after sys.path)
from kommo_sync.kommo_records import parse_contact  # noqa: E402 (after sys.path)
from kommo_sync.results import RunOptions, RunResult  # noqa: E402 (after sys.path)
from kommo_sync.sandbox.klaviyo import KlaviyoSandbox  # noqa: E402 (after sys.path)
from kommo_sync.sandbox.kommo import KommoSandbox  # noqa: E402 (after sys.path)
from kommo_sync.sandbox.mailchimp import MailchimpSandbox  # noqa: E402 (after sys.path)
from kommo_sync.sandbox.seed import SeedInfo, mutate_fraction, seed_account  # noqa: E402 (after sys.path)
from kommo_sync.sandbox.server import LoggedRequest, Request, Response, SandboxServer  # noqa: E402 (after sys.path)

KOMMO_TOKEN = "bench-kommo-token-0001"
MAILCHIMP_KEY = "sandbox-benchmark-key-us1"
KLAVIYO_KEY = "pk_bench_klaviyo_key_0001"
ENV = {
    "KOMMO_TOKEN": KOMMO_TOKEN,
    "MAILCHIMP_API_KEY": MAILCHIMP_KEY,
    "KLAVIYO_API_KEY": KLAVIYO_KEY,
}
KOMMO_LIMIT = 7
PAGE = 250
EVENTS_PAGE = 100
APIS = ("kommo", "mailchimp", "klaviyo")
DESTINATION_APIS = ("mailchimp", "klaviyo")
BASELINE_EVENT = "Synced from Kommo"
KOMMO_PATHS = {
    "/api/v4/contacts": "contacts",
    "/api/v4/leads": "leads",
    "/api/v4/companies": "companies",
    "/api/v4/events": "events",
    "/api/v4/leads/pipelines": "pipelines",
    "/api/v4/contacts/custom_fields": "custom fields",
}
ID_SEGMENT = re.compile(r"^(?=.*\d)[A-Za-z0-9_.-]{5,}$")
ONE_CONTACT = re.compile(r"^/api/v4/contacts/\d+$")
# Kommo endpoint -> (RunResult count of its items, page size, always queried at least once)
ITEM_ROWS = {
    "leads": ("pulled_leads", PAGE, True),
    "contacts": ("pulled_contacts", PAGE, True),
    "contacts by id": ("contacts_by_id", PAGE, False),
    "companies": ("pulled_companies", PAGE, False),
    "events": ("pulled_events", EVENTS_PAGE, True),
}
KOMMO_ROWS = (
    "pipelines",
    "custom fields",
    "leads",
    "contacts",
    "contacts by id",
    "companies",
    "events",
    "other",
)
EXTRAPOLATE_TO = (100_000, 500_000)


# the sandboxes -------------------------------------------------------------------------------
class Stack:
    """The three sandboxes on local ports, in real time, with realistic latency and limits."""

    def __init__(self, latency: tuple[float, float]):
        clock = Clock()
        self.kommo = KommoSandbox(clock, token=KOMMO_TOKEN, rate_limit=KOMMO_LIMIT)
        self.mailchimp = MailchimpSandbox(clock, api_key=MAILCHIMP_KEY, max_connections=10)
        self.klaviyo = KlaviyoSandbox(clock, api_key=KLAVIYO_KEY)
        self.apps = {"kommo": self.kommo, "mailchimp": self.mailchimp, "klaviyo": self.klaviyo}
        self.stamps: dict[str, list[tuple[float, Request]]] = {name: [] for name in self.apps}
        for name, app in self.apps.items():
            app.latency = latency
            app.dispatch = self._stamped(app.dispatch, self.stamps[name])  # type: ignore[method-assign]
        self.servers = {name: SandboxServer(app).start() for name, app in self.apps.items()}
        self.list_id = self.mailchimp.add_list("CRM contacts")
        self.klaviyo_list = self.klaviyo.add_list("CRM Leads")

    @staticmethod
    def _stamped(
        dispatch: Callable[[Request], Response], stamps: list[tuple[float, Request]]
    ) -> Callable[[Request], Response]:
        """The app's dispatch, noting when each answer left (for the run's timeline)."""
        clock = Clock()

        def answer(request: Request) -> Response:
            response = dispatch(request)
            stamps.append((clock.monotonic(), request))
            return response

        return answer

    def url(self, name: str) -> str:
        return self.servers[name].url

    def marks(self) -> dict[str, int]:
        """Where each request log ends now; `since(marks)` returns what came after."""
        return {name: len(app.log) for name, app in self.apps.items()}

    def since(self, marks: dict[str, int]) -> dict[str, list[LoggedRequest]]:
        return {name: list(app.log[marks[name] :]) for name, app in self.apps.items()}

    def stamp_marks(self) -> dict[str, int]:
        return {name: len(stamps) for name, stamps in self.stamps.items()}

    def timeline(self, marks: dict[str, int], start: float) -> dict[str, tuple[float, float]]:
        """Per API, and per Kommo endpoint, seconds from `start` to its first and last answer
        since `marks` (when the pull ended says how long the push tail was)."""
        spans: dict[str, list[float]] = {}
        for name, stamps in self.stamps.items():
            for at, request in stamps[marks[name] :]:
                spans.setdefault(name, []).append(at - start)
                if name == "kommo":
                    spans.setdefault(f"kommo {kommo_endpoint(request)}", []).append(at - start)
        return {name: (min(times), max(times)) for name, times in spans.items()}

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()


class RemoteStack:
    """A `Stack` served from a child process, driven over a pipe: seeding, edits, request logs
    (without bodies) and the timeline come back as plain data."""

    def __init__(self, latency: tuple[float, float]):
        context = multiprocessing.get_context("fork")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_serve_stack, args=(child, latency), daemon=True)
        self.process.start()
        self.urls, self.list_id, self.klaviyo_list = self._call("where")

    def _call(self, command: str, *args: Any) -> Any:
        self.pipe.send((command, args))
        ok, value = self.pipe.recv()
        if not ok:
            raise RuntimeError(f"sandbox process: {value}")
        return value

    def url(self, name: str) -> str:
        return self.urls[name]

    def seed(self, contacts: int, seed: int) -> SeedInfo:
        return self._call("seed", contacts, seed)

    def mutate(self, fraction: float, seed: int) -> list[int]:
        return self._call("mutate", fraction, seed)

    def sizes(self) -> dict[str, int]:
        return self._call("sizes")

    def marks(self) -> dict[str, int]:
        return self._call("marks")

    def since(self, marks: dict[str, int]) -> dict[str, list[LoggedRequest]]:
        return self._call("since", marks)

    def stamp_marks(self) -> dict[str, int]:
        return self._call("stamp_marks")

    def timeline(self, marks: dict[str, int], start: float) -> dict[str, tuple[float, float]]:
        return self._call("timeline", marks, start)  # monotonic time is shared by processes

    def close(self) -> None:
        self._call("close")
        self.process.join(timeout=10)


def _serve_stack(pipe: Any, latency: tuple[float, float]) -> None:
    """The child process: one Stack, answering RemoteStack's commands until `close`."""
    stack = Stack(latency)
    commands: dict[str, Callable[..., Any]] = {
        "where": lambda: (
            {name: stack.url(name) for name in APIS},
            stack.list_id,
            stack.klaviyo_list,
        ),
        "seed": lambda contacts, seed: seed_account(stack.kommo, contacts, seed=seed),
        "mutate": lambda fraction, seed: mutate_fraction(stack.kommo, fraction, seed),
        "sizes": lambda: {
            "contacts": len(stack.kommo.contacts),
            "leads": len(stack.kommo.leads),
            "companies": len(stack.kommo.companies),
            "custom fields": len(stack.kommo.custom_fields),
        },
        "marks": stack.marks,
        "stamp_marks": stack.stamp_marks,
        "timeline": stack.timeline,
        "since": lambda marks: {
            name: [replace(r, headers={}, body=b"") for r in log]
            for name, log in stack.since(marks).items()
        },
        "close": stack.close,
    }
    while True:
        command, args = pipe.recv()
        try:
            pipe.send((True, commands[command](*args)))
        except Exception as exc:  # reported to the parent, which stops
            pipe.send((False, f"{command}: {exc!r}"))
        if command == "close":
            return


def klaviyo_destination_ready() -> bool:
    """Whether kommo_sync.destinations.klaviyo exists and imports (it is being written)."""
    try:
        importlib.import_module("kommo_sync.destinations.klaviyo")
    except ImportError:
        return False
    except Exception as exc:  # a half-written module must not stop the Mailchimp figures
        print(f"note: kommo_sync.destinations.klaviyo does not import ({exc!r}); Klaviyo left out")
        return False
    return True


def write_config(
    stack: RemoteStack, folder: Path, with_klaviyo: bool, kommo_rate: float | None = None
) -> Path:
    raw: dict[str, Any] = {
        "kommo": {
            "base_url": stack.url("kommo"),
            "token": "${KOMMO_TOKEN}",
            "consent_field": "Email consent",
            "lead_source_field": "Lead source",
        },
        "state": str(folder / "state.db"),
        "mailchimp": {
            "api_key": "${MAILCHIMP_API_KEY}",
            "base_url": stack.url("mailchimp") + "/3.0",
            "list_id": stack.list_id,
        },
    }
    if kommo_rate is not None:
        raw["kommo"]["requests_per_second"] = kommo_rate
    if with_klaviyo:
        raw["klaviyo"] = {
            "api_key": "${KLAVIYO_API_KEY}",
            "base_url": stack.url("klaviyo"),
            "list_id": stack.klaviyo_list,
        }
    path = folder / "sync.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


# measuring -----------------------------------------------------------------------------------
@dataclass
class Traffic:
    reads: int = 0
    writes: int = 0
    refused: int = 0

    @property
    def total(self) -> int:
        return self.reads + self.writes


def traffic(log: list[LoggedRequest]) -> Traffic:
    result = Traffic()
    for request in log:
        if request.is_write:
            result.writes += 1
        else:
            result.reads += 1
        result.refused += request.status == 429
    return result


@dataclass
class Cost:
    """Wall, CPU and memory of one measured stretch."""

    wall: float = 0.0
    cpu: float = 0.0
    thread_cpu: float = 0.0
    rss_start_mb: float = 0.0
    peak_rss_mb: float = 0.0


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
    cost = Cost(rss_start_mb=current_rss_mb())
    clock = Clock()
    wall, cpu, thread_cpu = clock.monotonic(), time.process_time(), time.thread_time()
    yield cost
    cost.wall = clock.monotonic() - wall
    cost.cpu = time.process_time() - cpu
    cost.thread_cpu = time.thread_time() - thread_cpu
    cost.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pages(items: int, size: int, at_least: int = 0) -> int:
    return max(at_least, math.ceil(items / size))


def endpoint(request: LoggedRequest) -> str:
    """Method and path with ids collapsed: `POST /api/lists/{id}/relationships/profiles`."""
    return (
        request.method
        + " "
        + "/".join("{id}" if ID_SEGMENT.match(part) else part for part in request.path.split("/"))
    )


def is_feedback_read(request: LoggedRequest) -> bool:
    """The feedback polls (unsubscribes, cleaned, suppressions, activity): one page each per run
    whatever changed, so they are shown apart from the pushing."""
    query = " ".join(f"{k}={v}" for k, v in request.query.items())
    return request.method == "GET" and (
        "since_last_changed" in query
        or "suppression.timestamp" in query
        or "/email-activity" in request.path
        or request.path.endswith("/api/events")
    )


def kommo_endpoint(request: LoggedRequest) -> str:
    path = request.path.rstrip("/")
    if ONE_CONTACT.match(path):
        return "contacts by id"
    name = KOMMO_PATHS.get(path, "other")
    by_id = any(key.startswith("filter[id]") for key in request.query)
    return "contacts by id" if name == "contacts" and by_id else name


@dataclass
class Figures:
    """What one run (or the baseline) printed, kept for the side-by-side comparison."""

    label: str
    cost: Cost
    traffic: dict[str, Traffic]
    changed: int
    kommo_sent: Counter[str]
    kommo_minimum: dict[str, int]
    items: dict[str, int] = field(default_factory=dict)
    timeline: dict[str, tuple[float, float]] = field(default_factory=dict)
    endpoints: dict[str, Counter[str]] = field(default_factory=dict)
    feedback_reads: int = 0

    @property
    def destination_requests(self) -> int:
        return sum(self.traffic[api].total for api in DESTINATION_APIS)

    @property
    def destination_writes(self) -> int:
        return sum(self.traffic[api].writes for api in DESTINATION_APIS)

    @property
    def kommo_requests(self) -> int:
        return self.traffic["kommo"].total

    @property
    def minimum(self) -> int:
        return sum(self.kommo_minimum.values())

    @property
    def floor(self) -> float:
        return self.minimum / KOMMO_LIMIT

    def per_thousand(self, requests: int) -> float | None:
        return 1000 * requests / self.changed if self.changed else None


def kommo_minimum(
    counts: Counter[str], sent: Counter[str], events_used: bool, field_count: int
) -> dict[str, int]:
    """The fewest Kommo requests that fetch the items this run needed: every page full.

    Leads fetched by id (for events) are counted with the lead list, as `pulled_leads` holds both;
    requests we cannot judge (notes written back) count as they were sent.
    """
    minimum = {"pipelines": 1, "custom fields": pages(field_count, PAGE, 1), "other": sent["other"]}
    for row, (key, size, listed) in ITEM_ROWS.items():
        minimum[row] = pages(counts[key], size, 1 if listed else 0)
    if not events_used:
        minimum["events"] = 0
    return minimum


def scaled_minimum(figures: Figures, scale: float) -> int:
    """The Kommo minimum of the same account `scale` times larger: items grow, setup does not."""
    fixed = sum(n for row, n in figures.kommo_minimum.items() if row not in ITEM_ROWS)
    grown = sum(
        pages(round(figures.items[key] * scale), size, 1 if listed else 0)
        for row, (key, size, listed) in ITEM_ROWS.items()
        if figures.kommo_minimum.get(row)
    )
    return fixed + grown


# kommo-sync ------------------------------------------------------------------------------------
def run_sync(label: str, config: Config, stack: RemoteStack) -> tuple[Figures, RunResult]:
    engine = build_engine(config, Clock())
    marks, stamp_marks, started = stack.marks(), stack.stamp_marks(), Clock().monotonic()
    with measured() as cost:
        result = engine.run(RunOptions())
    log = stack.since(marks)
    sent = Counter(kommo_endpoint(r) for r in log["kommo"])
    events_used = bool(event_sinks(engine.destinations))
    minimum = kommo_minimum(result.counts, sent, events_used, stack.sizes()["custom fields"])
    items = {key: result.counts[key] for key, _, _ in ITEM_ROWS.values()}
    figures = Figures(
        label,
        cost,
        {api: traffic(log[api]) for api in APIS},
        result.counts["people"],
        sent,
        minimum,
        items,
        stack.timeline(stamp_marks, started),
        {api: Counter(map(endpoint, log[api])) for api in DESTINATION_APIS},
        sum(map(is_feedback_read, log["mailchimp"] + log["klaviyo"])),
    )
    return figures, result


def ours(args: argparse.Namespace, latency: tuple[float, float]) -> list[Figures]:
    stack = RemoteStack(latency)
    try:
        print(f"seeding {args.contacts:,} contacts ...", flush=True)
        stack.seed(args.contacts, args.seed)
        sizes = stack.sizes()
        print(
            f"  {sizes['contacts']:,} contacts, {sizes['leads']:,} leads, "
            f"{sizes['companies']:,} companies",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="kommo-sync-bench-") as folder:
            config = load_config(
                write_config(stack, Path(folder), klaviyo_destination_ready(), args.kommo_rate), ENV
            )
            return three_runs(args, config, stack)
    finally:
        stack.close()


def three_runs(args: argparse.Namespace, config: Config, stack: RemoteStack) -> list[Figures]:
    first, result = run_sync(f"first full sync ({args.contacts:,} contacts)", config, stack)
    print_figures(first, result)
    changed = stack.mutate(0.01, args.seed)
    incremental, result = run_sync(
        f"incremental after 1 % changed ({len(changed):,} contacts edited)", config, stack
    )
    print_figures(incremental, result)
    unchanged, result = run_sync("nothing changed", config, stack)
    print_figures(unchanged, result)
    print_unchanged_targets(unchanged)
    return [first, incremental, unchanged]


# the per-record baseline -------------------------------------------------------------------------
class PerRecordBaseline:
    """The design of the how-to articles, over the same HTTP stack: one contact at a time, read
    it from Kommo, PUT the Mailchimp member, POST its tags, import the Klaviyo profile, add it
    to the list, post an event. Six requests per contact with an email.

    It tags by "has leads or not" from the contact it read; finding the real stage would cost it
    more lead reads per contact, which are not counted (in its favour)."""

    def __init__(self, config: Config, stack: RemoteStack):
        clock = Clock()
        assert config.mailchimp is not None
        self.kommo = kommo_http(config.kommo, clock)
        self.mailchimp = mailchimp_http(config.mailchimp, clock)
        self.klaviyo = HttpClient(
            base_url=stack.url("klaviyo"),
            vendor="Klaviyo",
            clock=clock,
            headers={
                "Authorization": f"Klaviyo-API-Key {KLAVIYO_KEY}",
                "revision": KLAVIYO_REVISION,
                "Accept": "application/vnd.api+json",
            },
        )
        self.member_path = f"/lists/{config.mailchimp.list_id}/members"
        self.klaviyo_list = stack.klaviyo_list
        self.fields = resolve_fields(config.kommo, KommoClient(self.kommo).custom_fields())
        self.outcomes: Counter[str] = Counter()

    def run(self, contact_ids: list[int]) -> None:
        for contact_id in contact_ids:
            self.sync_one(contact_id)

    def sync_one(self, contact_id: int) -> None:
        raw = self.kommo.get_json(f"/api/v4/contacts/{contact_id}", params={"with": "leads"})
        contact = parse_contact(raw, self.fields)
        if not contact.email:
            self.outcomes["no email"] += 1
            return
        has_leads = bool((raw.get("_embedded") or {}).get("leads"))
        self._attempt(
            "mailchimp",
            lambda: self.to_mailchimp(contact, "In Progress" if has_leads else "New Lead"),
        )
        self._attempt("klaviyo", lambda: self.to_klaviyo(contact))

    def _attempt(self, name: str, send: Any) -> None:
        try:
            send()
            self.outcomes[f"{name} done"] += 1
        except (RecordRejected, RetryLater):
            self.outcomes[f"{name} rejected"] += 1

    def to_mailchimp(self, contact: Any, tag: str) -> None:
        path = f"{self.member_path}/{subscriber_hash(contact.email)}"
        self.mailchimp.request(
            "PUT",
            path,
            json={
                "email_address": contact.email,
                "status_if_new": "subscribed" if contact.consent else "transactional",
                "merge_fields": {"FNAME": contact.first_name, "LNAME": contact.last_name},
            },
        )
        self.mailchimp.request(
            "POST", f"{path}/tags", json={"tags": [{"name": tag, "status": "active"}]}
        )

    def to_klaviyo(self, contact: Any) -> None:
        profile = {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
        }
        body = self.klaviyo.request(
            "POST", "/api/profile-import", json={"data": {"type": "profile", "attributes": profile}}
        ).json()
        member = {"data": [{"type": "profile", "id": body["data"]["id"]}]}
        self.klaviyo.request(
            "POST", f"/api/lists/{self.klaviyo_list}/relationships/profiles", json=member
        )
        self.klaviyo.request(
            "POST",
            "/api/events",
            json={
                "data": {
                    "type": "event",
                    "attributes": {
                        "properties": {"kommo_contact_id": contact.id},
                        "metric": {
                            "data": {"type": "metric", "attributes": {"name": BASELINE_EVENT}}
                        },
                        "profile": {
                            "data": {"type": "profile", "attributes": {"email": contact.email}}
                        },
                    },
                }
            },
        )


def baseline(args: argparse.Namespace, latency: tuple[float, float]) -> Figures:
    stack = RemoteStack(latency)
    try:
        info = stack.seed(args.baseline_contacts, args.seed)
        with tempfile.TemporaryDirectory(prefix="kommo-sync-baseline-") as folder:
            config = load_config(write_config(stack, Path(folder), with_klaviyo=False), ENV)
            marks = stack.marks()
            with measured() as cost:
                worker = PerRecordBaseline(config, stack)
                worker.run(info.contact_ids)
        log = stack.since(marks)
        sent = Counter(kommo_endpoint(r) for r in log["kommo"])
        minimum = {
            "custom fields": pages(stack.sizes()["custom fields"], PAGE, 1),
            "contacts by id": pages(len(info.contact_ids), PAGE, 1),
        }
        figures = Figures(
            f"per-record baseline ({args.baseline_contacts:,} contacts)",
            cost,
            {api: traffic(log[api]) for api in APIS},
            len(info.contact_ids),
            sent,
            minimum,
        )
        print_figures(figures, None, dict(worker.outcomes))
        return figures
    finally:
        stack.close()


# printing ------------------------------------------------------------------------------------
def print_figures(
    figures: Figures, result: RunResult | None, outcomes: dict[str, int] | None = None
) -> None:
    cost = figures.cost
    print(f"\n== {figures.label}")
    if result is not None:
        names = sorted({key.split(".")[0] for key in result.counts if key.endswith(".done")})
        print(f"destinations: {', '.join(names) or 'none'}")
    print(
        f"wall {cost.wall:.1f} s   CPU {cost.cpu:.1f} s (process, sandboxes apart), "
        f"{cost.thread_cpu:.1f} s (run thread)   RSS {cost.rss_start_mb:.0f} MB at start, "
        f"peak {cost.peak_rss_mb:.0f} MB (ru_maxrss, sandboxes apart)"
    )
    print_counts(figures, result, outcomes)
    print_traffic(figures)
    print_kommo(figures)
    if figures.timeline:
        print(
            "timeline (first-last answer, s from run start): "
            + ", ".join(
                f"{api} {low:.1f}-{high:.1f}" for api, (low, high) in figures.timeline.items()
            )
        )


def print_counts(
    figures: Figures, result: RunResult | None, outcomes: dict[str, int] | None
) -> None:
    if result is not None:
        counts = result.counts
        print(
            "changed contacts (people re-planned, RunResult.counts['people']): "
            f"{figures.changed:,}   "
            f"[changed_contacts {counts['changed_contacts']:,}, "
            f"changed_leads {counts['changed_leads']:,}, "
            f"rejected {counts['rejected']:,}, "
            f"status {'ok' if not result.rejected else 'with rejections'}]"
        )
        pushed = {k: v for k, v in sorted(counts.items()) if k.split(".")[0] in DESTINATION_APIS}
        print(
            "destination counts: " + (", ".join(f"{k} {v:,}" for k, v in pushed.items()) or "none")
        )
    else:
        print(f"contacts processed: {figures.changed:,}   outcomes: {outcomes}")


def print_traffic(figures: Figures) -> None:
    print(f"{'requests':<12}{'reads':>8}{'writes':>8}{'total':>8}{'429s':>7}")
    for api in APIS:
        t = figures.traffic[api]
        print(f"  {api:<10}{t.reads:>8,}{t.writes:>8,}{t.total:>8,}{t.refused:>7,}")
    for api, counter in figures.endpoints.items():
        if counter:
            print(
                f"  {api} by endpoint: "
                + ", ".join(f"{name} {n:,}" for name, n in counter.most_common())
            )
    per_k = figures.per_thousand(figures.destination_requests)
    shown = f"{per_k:.1f}" if per_k is not None else "n/a (nothing changed)"
    print(
        f"Mailchimp + Klaviyo requests per 1,000 changed contacts: {shown}   (target <= 10; "
        f"{figures.destination_requests:,} requests, {figures.destination_writes:,} writes)"
    )
    pushing = figures.destination_requests - figures.feedback_reads
    per_k = figures.per_thousand(pushing)
    print(
        f"  of which feedback reads {figures.feedback_reads:,} "
        "(one page each per run, whatever changed); "
        f"pushing {pushing:,} = {f'{per_k:.1f}' if per_k is not None else 'n/a'} per 1,000 changed"
    )


def print_kommo(figures: Figures) -> None:
    rows = [row for row in KOMMO_ROWS if figures.kommo_sent[row] or figures.kommo_minimum.get(row)]
    print(f"  {'kommo endpoint':<16}{'sent':>6}{'minimum':>9}")
    for row in rows:
        print(f"  {row:<16}{figures.kommo_sent[row]:>6,}{figures.kommo_minimum.get(row, 0):>9,}")
    if figures.items:
        print("  items pulled: " + ", ".join(f"{k} {v:,}" for k, v in figures.items.items()))
    ratio = figures.kommo_requests / figures.minimum
    wall_ratio = figures.cost.wall / figures.floor
    print(
        f"Kommo requests {figures.kommo_requests:,} / minimum {figures.minimum:,} "
        f"= {ratio:.2f}x   (target <= 1.1)"
    )
    print(
        f"Kommo floor {figures.minimum:,} / {KOMMO_LIMIT} req/s = {figures.floor:.1f} s;  "
        f"wall / floor = {wall_ratio:.2f}   (target <= 1.2 for a 100,000-contact first sync)"
    )


def print_unchanged_targets(figures: Figures) -> None:
    writes = {api: figures.traffic[api].writes for api in DESTINATION_APIS}
    over = {row: n for row, n in figures.kommo_sent.items() if n > 1}
    print(
        f"nothing-changed targets: destination writes {writes} (target 0) -> "
        f"{'met' if not any(writes.values()) else 'MISSED'};  Kommo endpoints with more than one "
        f"request: {over or 'none'} (target none) -> {'met' if not over else 'MISSED'}"
    )
    if over and all(n <= figures.kommo_minimum.get(row, 0) for row, n in over.items()):
        print(
            "  (every page was needed: the window's overlap (kommo.overlap_seconds, 300 s) "
            "re-reads the items edited minutes ago; with nothing edited in the last 300 s each "
            "list is one page)"
        )


def print_comparison(first: Figures, base: Figures) -> None:
    print("\n== side by side: per-record baseline vs kommo-sync's first full sync")
    print(f"{'':<40}{'baseline':>12}{'ours':>12}{'ratio':>10}")
    comparison_row(
        "Mailchimp+Klaviyo requests / 1,000",
        base.per_thousand(base.destination_requests),
        first.per_thousand(first.destination_requests),
    )
    comparison_row(
        "Kommo requests / 1,000",
        base.per_thousand(base.kommo_requests),
        first.per_thousand(first.kommo_requests),
    )
    comparison_row(
        "wall ms per contact",
        1000 * base.cost.wall / base.changed,
        1000 * first.cost.wall / first.changed,
    )
    print_extrapolation(first, base)


def comparison_row(name: str, baseline_value: float | None, our_value: float | None) -> None:
    if not baseline_value or not our_value:
        return
    print(
        f"{name:<40}{baseline_value:>12,.1f}{our_value:>12,.2f}{baseline_value / our_value:>9,.0f}x"
    )


def print_extrapolation(first: Figures, base: Figures) -> None:
    """Baseline: linear per contact. Ours: Kommo pages and bulk batches, at the measured
    wall/floor."""
    print(
        "\nHow this extrapolates: the baseline's requests and wall grow linearly per contact "
        f"({base.destination_requests / base.changed:.2f} destination and "
        f"{base.kommo_requests / base.changed:.2f} Kommo requests, "
        f"{1000 * base.cost.wall / base.changed:.0f} ms "
        "each, sequential); ours grow per page of 250 and per bulk batch, so the measured "
        "per-contact rates are upper bounds at larger sizes (per-run fixed costs do not grow), "
        "and our wall follows the Kommo floor at the measured wall/floor ratio."
    )
    ratio = first.cost.wall / first.floor
    print(
        f"{'contacts':>10}{'baseline requests':>19}{'baseline wall':>15}"
        f"{'our Kommo floor':>17}{'our wall est.':>15}"
    )
    for size in EXTRAPOLATE_TO:
        scale = size / first.changed
        floor = scaled_minimum(first, scale) / KOMMO_LIMIT
        base_requests = (base.destination_requests + base.kommo_requests) / base.changed * size
        print(
            f"{size:>10,}{base_requests:>19,.0f}{hours(base.cost.wall / base.changed * size):>15}"
            f"{hours(floor):>17}{hours(floor * ratio):>15}"
        )


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--contacts", type=int, default=10_000, help="contacts seeded for kommo-sync's runs"
    )
    parser.add_argument(
        "--baseline-contacts", type=int, default=500, help="contacts for the per-record baseline"
    )
    parser.add_argument(
        "--latency", default="0.05,0.15", help="low,high seconds of latency per request"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="only kommo-sync's three runs")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated account")
    parser.add_argument(
        "--kommo-rate",
        type=float,
        help="kommo.requests_per_second for kommo-sync (default: its own)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    low, high = (float(part) for part in args.latency.split(","))
    print(
        f"sync_speed: {args.contacts:,} contacts, latency {low * 1000:.0f}-{high * 1000:.0f} ms, "
        f"Kommo {KOMMO_LIMIT} req/s, Mailchimp 10 connections, Klaviyo tiers; real time",
        flush=True,
    )
    runs = ours(args, (low, high))
    if args.skip_baseline:
        return
    print(f"\nbaseline: {args.baseline_contacts:,} contacts, one at a time ...", flush=True)
    print_comparison(runs[0], baseline(args, (low, high)))


if __name__ == "__main__":
    main()
