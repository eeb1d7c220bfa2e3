"""Issue 10's sweeps, the shared parts: a realistic seeded world, its end state keyed by email,
the words for how two end states differ, and runs that go on until nothing is left to write.

A sweep breaks a run somewhere (a kill, a lost answer, chaos), runs to completion and compares
the world with a reference: the same seed, run cleanly. Vendor ids are random, so everything is
keyed by email (or by a Kommo lead's name); Klaviyo events by what they say happened, the Kommo
event behind their unique_id included; note texts with their dates blanked, so a reference run
in simulated time compares with a world run in real time.
"""

from __future__ import annotations

import copy
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from kommo_sync.cli import cli
from kommo_sync.clock import Clock, FakeClock
from kommo_sync.destinations.klaviyo.config import DEFAULT_EVENTS
from kommo_sync.sandbox.faults import Fault
from kommo_sync.sandbox.kommo import LOST, WON
from tests.conftest import ENV, World

DEAL_METRICS = frozenset(DEFAULT_EVENTS.values())
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
EVENTS_SINCE = "2025-01-01"  # before any seeded history, in simulated and in real time
STAGES = ("new", "in_progress", "won", "lost")
LAST_NAMES = ("Müller", "Smith", "Rossi", "Nowak", "García", "Chen", "O'Brien", "Jansen")
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")
SETTLE_RUNS = 8
ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 120


# the world ---------------------------------------------------------------------------------------
@dataclass
class Scenario:
    """What seed_scenario made, for the changes and the checks to aim at."""

    n: int
    sales: int
    status: dict[str, int]
    contacts: dict[int, int] = field(default_factory=dict)  # i -> contact id of p{i}
    leads: dict[str, int] = field(default_factory=dict)  # lead name -> lead id
    noted: set[str] = field(default_factory=set)  # emails that may get notes


class FastClock(Clock):
    """Real time that never waits: in-process runs against real-time sandboxes, without the
    pacing and job polls a subprocess run pays (the sandboxes' rate limits are off for them)."""

    def __init__(self, latest: float = 0.0):
        self.latest = latest  # the latest time read: vendor times up to it may be out

    def now(self) -> float:
        moment = time.time()
        self.latest = max(self.latest, moment)
        return moment

    def sleep(self, seconds: float) -> None:
        pass

    def sleep_until(self, moment: float) -> None:
        pass

    def advance(self, seconds: float) -> None:
        """Real time cannot jump: wait until a later whole second than the latest time read (this
        call's included: a test's own changes to a sandbox came before it), so what happens next
        carries a later (second-granular) vendor time than what came before."""
        wait = int(max(self.latest, self.now())) + 1.02 - time.time()
        if wait > 0:
            time.sleep(wait)


def real_time_world(tmp: Path, state_url: str | None = None) -> World:
    """Sandboxes on the wall clock (a subprocess run shares their time); in-process runs use a
    FastClock; jobs finish at once; no sandbox rate limit (runs in-process do not pace)."""
    tmp.mkdir(parents=True, exist_ok=True)
    world = World(tmp, Clock(), state_url)  # type: ignore[arg-type]
    world.clock = FastClock()  # type: ignore[assignment]
    world.kommo.rate_window = None
    world.klaviyo.rate_limited = False
    world.mailchimp.jobs_finish_at_once = world.klaviyo.jobs_finish_at_once = True
    return world


@dataclass(frozen=True)
class Snapshot:
    """A world's vendors, state file, scenario and config, to replay from in a fresh world."""

    apps: tuple[bytes, ...]
    state: Path
    scenario: Scenario
    raw: dict[str, Any]
    now: float  # a simulated world restores it at this time (FakeClock(start=now))


def snapshot(world: World, where: Path) -> Snapshot:
    _copy_db(Path(world.raw["state"]), where / "snapshot.db")
    scenario: Scenario = world.scenario  # type: ignore[attr-defined]
    return Snapshot(
        tuple(app.snapshot() for app in apps(world)),
        where / "snapshot.db",
        copy.deepcopy(scenario),
        copy.deepcopy(world.raw),
        world.clock.now(),
    )


def restore(world: World, snap: Snapshot) -> None:
    """`world` (fresh, empty) becomes the snapshot's world, on its own ports and files."""
    for app, data in zip(apps(world), snap.apps, strict=True):
        app.restore(data)
    _copy_db(snap.state, Path(world.raw["state"]))
    urls = {"kommo": world.raw["kommo"]["base_url"]}
    world.raw = copy.deepcopy(snap.raw)
    world.raw["kommo"]["base_url"] = urls["kommo"]
    world.raw["state"] = str(world.tmp / "state.db")
    world.with_mailchimp().with_klaviyo(
        **{
            k: v
            for k, v in snap.raw["klaviyo"].items()
            if k not in ("api_key", "base_url", "list_id")
        }
    )
    world.scenario = copy.deepcopy(snap.scenario)  # type: ignore[attr-defined]
    if isinstance(world.clock, FastClock):
        world.clock.latest = max(world.clock.latest, snap.now)


def _copy_db(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def apps(world: World) -> tuple[Any, Any, Any]:
    return world.kommo, world.mailchimp, world.klaviyo


def writes(world: World) -> int:
    return sum(len(app.writes()) for app in apps(world))


def seed_scenario(world: World, n: int = 40) -> Scenario:
    """~n contacts (two of them sharing an email with another), companies, leads over a Sales
    pipeline's stages, mixed consent, a few people already in Mailchimp and Klaviyo; both
    destinations with stage lists, consent-based subscribing, and notes with consent write-back."""
    kommo = world.kommo
    sales = kommo.add_pipeline("Sales", ["Qualified", "Proposal"], is_main=True)
    status = {
        "new": world.status_id(sales, "Incoming leads"),
        "won": WON,
        "lost": LOST,
        **{name.lower(): world.status_id(sales, name) for name in ("Qualified", "Proposal")},
    }
    scenario = Scenario(n, sales, status)
    companies = [
        kommo.add_company(f"{COMPANIES[k % len(COMPANIES)]} {k}") for k in range(max(1, n // 6))
    ]
    for i in range(n):
        _seed_person(world, scenario, i, companies)
    for i, last in ((1, "Dup"), (2, "Dup")):  # same email, a second card
        dup = kommo.add_contact(f"P{i}", last, email=f"p{i}@firm.io")
        if i == 1:
            _lead(world, scenario, f"Deal {i}d", 700, dup, "won")
    _seed_vendors(world)
    _configure(world)
    world.scenario = scenario  # type: ignore[attr-defined]
    return scenario


def _seed_person(world: World, scenario: Scenario, i: int, companies: list[int]) -> None:
    stage = STAGES[i % 4]
    consent = stage != "lost" and i % 6 != 5
    cid = world.kommo.add_contact(
        f"P{i}",
        LAST_NAMES[i % len(LAST_NAMES)],
        email=f"p{i}@firm.io",
        phone=f"+4930{1000000 + i}" if i % 3 == 0 else None,
        company_id=companies[i % len(companies)] if i % 3 != 2 else None,
        consent=consent,
        lead_source=("Website", "Referral", None)[i % 3],
    )
    scenario.contacts[i] = cid
    if i % 13 != 12:
        _lead(world, scenario, f"Deal {i}", 100 * (i + 1), cid, stage, step=(i // 4) % 2)
    if i % 7 == 0:
        _lead(world, scenario, f"Deal {i}b", 50, cid, "lost")


def _lead(
    world: World, scenario: Scenario, name: str, price: int, contact: int, stage: str, step: int = 0
) -> None:
    """A lead created in the first stage, then moved (so the history holds its moves)."""
    lead = world.kommo.add_lead(name, price, scenario.sales, contact_ids=[contact])
    scenario.leads[name] = lead
    target = {
        "new": None,
        "in_progress": ("qualified", "proposal")[step],
        "won": "won",
        "lost": "lost",
    }[stage]
    if target:
        world.kommo.move_lead(lead, scenario.status[target])


def _seed_vendors(world: World) -> None:
    """Connecting accounts that are not empty: a lost lead and a new lead already in the
    audience, and a Klaviyo profile that opted out long ago."""
    world.mailchimp.add_member(world.list_id, "p3@firm.io", merge_fields={"FNAME": "Old"})
    world.mailchimp.add_member(world.list_id, "p4@firm.io")
    world.klaviyo.add_profile("p9@firm.io", first_name="Nine")
    world.klaviyo.unsubscribe("p9@firm.io", at=world.klaviyo.clock.now() - 86400)


def _configure(world: World) -> None:
    lists = {
        stage: world.klaviyo.add_list(name)
        for stage, name in (
            ("in_progress", "Open deals"),
            ("won", "Customers"),
            ("lost", "Lost deals"),
        )
    }
    world.with_mailchimp()
    world.with_klaviyo(subscribe_with_consent=True, lists_by_stage=lists, events_since=EVENTS_SINCE)
    world.raw["feedback"] = {"note_on_open_deals": True, "consent_field_write": True}
    world.raw["network"] = {"timeout_seconds": 2, "first_poll_seconds": 0.05}


def incremental_changes(world: World, everyone: bool = False) -> None:
    """A day of CRM work, small enough to go one by one (≤ 10 changes, ≤ 10 events a
    destination): three stage moves, a consent withdrawn in Kommo (our own unsubscribes follow),
    a first-name change and an email change, an unsubscribe in Mailchimp and one in Klaviyo
    (notes, consent cleared), two new people. `everyone`: a bulk edit touches every contact too."""
    s: Scenario = world.scenario  # type: ignore[attr-defined]
    kommo = world.kommo
    kommo.move_lead(s.leads["Deal 0"], s.status["qualified"])  # Stage Changed
    kommo.move_lead(s.leads["Deal 5"], s.status["won"])  # Deal Won
    kommo.move_lead(s.leads["Deal 9"], s.status["lost"])  # Deal Lost
    kommo.update_contact(s.contacts[6], consent=False)
    kommo.update_contact(s.contacts[10], first_name="Petra")
    kommo.update_contact(s.contacts[12], email="p12.new@firm.io")
    world.mailchimp.unsubscribe(world.list_id, "p13@firm.io", reason="Too many emails")
    world.klaviyo.unsubscribe("p14@firm.io")
    s.noted |= {"p13@firm.io", "p14@firm.io"}
    new = kommo.add_contact("Nova", "Neu", email="nova@firm.io", consent=True)
    _lead(world, s, "Deal nova", 990, new, "new")
    kommo.add_contact("Otto", "Ohne", email="otto@firm.io")
    if everyone:
        for cid in list(s.contacts.values()):
            kommo.update_contact(cid, lead_source="Trade fair")


# where sweeps break in ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """A request a sweep breaks (kills the run at, loses the answer of) in a phase where it
    occurs."""

    phase: str
    vendor: str
    method: str
    path: str
    name: str
    kind: str = "kill_after"
    query: tuple[tuple[str, str], ...] = ()
    body_contains: str | None = None

    @property
    def id(self) -> str:
        return f"{self.phase}:{self.name}"

    def fault(self, **overrides: Any) -> Fault:
        return Fault(
            self.method,
            self.path,
            **{
                "kind": self.kind,
                "query": dict(self.query) or None,
                "body_contains": self.body_contains,
                **overrides,
            },
        )

    def sandbox(self, world: World) -> Any:
        return {"kommo": world.kommo, "mailchimp": world.mailchimp, "klaviyo": world.klaviyo}[
            self.vendor
        ]


LIST = r"^/3\.0/lists/[^/]+"
MEMBER = LIST + r"/members/[0-9a-f]{32}"
RELATIONS = r"^/api/lists/[^/]+/relationships/profiles$"
SUBSCRIBE_JOBS = r"^/api/profile-subscription-bulk-create-jobs$"
# Every write endpoint in the phase where it occurs: the first sync (people already in the
# audience go through /batches, a tag only they carry is created) or a small incremental run.
WRITES = [
    Point("first", "mailchimp", "POST", LIST + r"/merge-fields$", "mailchimp merge-fields POST"),
    Point("first", "mailchimp", "POST", LIST + r"$", "mailchimp batch subscribe"),
    Point("first", "mailchimp", "POST", r"^/3\.0/batches$", "mailchimp batches POST"),
    Point("first", "mailchimp", "POST", LIST + r"/segments$", "mailchimp segments POST"),
    Point("first", "klaviyo", "POST", r"^/api/profile-bulk-import-jobs$", "klaviyo import job"),
    Point("first", "klaviyo", "POST", SUBSCRIBE_JOBS, "klaviyo subscribe job"),
    Point("first", "klaviyo", "POST", r"^/api/event-bulk-create-jobs$", "klaviyo event bulk job"),
    Point("incremental", "mailchimp", "PUT", MEMBER + "$", "mailchimp member PUT"),
    Point("incremental", "mailchimp", "PATCH", MEMBER + "$", "mailchimp member PATCH"),
    Point(
        "incremental",
        "mailchimp",
        "PATCH",
        MEMBER + "$",
        "mailchimp member PATCH unsubscribing",
        body_contains='"unsubscribed"',
    ),
    Point("incremental", "mailchimp", "POST", MEMBER + "/tags$", "mailchimp member tags"),
    Point("incremental", "klaviyo", "POST", r"^/api/profile-import$", "klaviyo profile-import"),
    Point("incremental", "klaviyo", "POST", RELATIONS, "klaviyo list add"),
    Point("incremental", "klaviyo", "DELETE", RELATIONS, "klaviyo list remove"),
    Point("incremental", "klaviyo", "POST", SUBSCRIBE_JOBS, "klaviyo subscribe job"),
    Point(
        "incremental",
        "klaviyo",
        "POST",
        r"^/api/profile-subscription-bulk-delete-jobs$",
        "klaviyo unsubscribe job",
    ),
    Point("incremental", "klaviyo", "POST", r"^/api/events$", "klaviyo single event"),
    Point("incremental", "kommo", "POST", r"^/api/v4/contacts/notes$", "kommo contact notes POST"),
    Point("incremental", "kommo", "POST", r"^/api/v4/leads/notes$", "kommo lead notes POST"),
    Point("incremental", "kommo", "PATCH", r"^/api/v4/contacts$", "kommo contacts PATCH"),
]
# The first, a middle and the last of three contact pages (510 people), killed before Kommo
# serves it.
PAGES = [
    Point(
        phase,
        "kommo",
        "GET",
        r"^/api/v4/contacts$",
        f"kommo contacts {name} page",
        "kill_before",
        (("page", str(number)), ("with", "leads")),
    )
    for phase in ("pages-first", "pages-incremental")
    for number, name in ((1, "first"), (2, "middle"), (3, "last"))
]


# running ----------------------------------------------------------------------------------------
def cli_run(world: World) -> Any:
    """`kommo-sync run --json` in-process with the world's clock (a traceback fails the test; JSON,
    as the text table of a 500-person run takes rich ~10 s to lay out)."""
    world.write_config()
    return CliRunner().invoke(
        cli,
        ["--config", str(world.config_path), "run", "--json"],
        obj={"clock": world.clock},
        env=ENV,
        catch_exceptions=False,
    )


def run_killed(world: World, app: Any, fault: Fault, log: Path) -> int:
    """`kommo-sync run` in a child process, SIGKILLed by sandbox `app` when `fault` (a kill kind)
    hits; the child's exit code (-SIGKILL when it was killed), its output in `log`. A FastClock
    then knows the times the child read, so its `advance` waits past them."""
    world.raw["kommo"]["requests_per_second"] = 7  # the most the config allows
    world.write_config()
    command = [sys.executable, "-m", "kommo_sync.cli", "--config", str(world.config_path), "run"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env={**os.environ, **ENV}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
        for each in apps(world):
            each.faults.victim_pid = proc.pid
        app.faults.add(fault)
        try:
            return proc.wait(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            for each in apps(world):
                each.faults.clear()
                each.faults.victim_pid = None
            if isinstance(world.clock, FastClock):
                world.clock.latest = max(world.clock.latest, time.time())


def settle(
    world: World, runs: int = SETTLE_RUNS, run: Callable[[World], Any] = cli_run
) -> list[int]:
    """Run until a run exits 0 and writes nothing; the exit codes. Simulated time moves a minute
    between runs. In real time runs follow each other within a second, and a run reads vendor
    times only up to its start's whole second (Klaviyo's have fractions), so a quiet run counts
    once another one, started in a later second, is quiet too."""
    codes: list[int] = []
    simulated, quiet = isinstance(world.clock, FakeClock), False
    for _ in range(runs):
        if simulated or quiet:
            world.clock.advance(60)
        written = writes(world)
        codes.append(run(world).exit_code)
        if codes[-1] == 0 and writes(world) == written:
            if simulated or quiet:
                return codes
            quiet = True
        else:
            quiet = False
    return codes


@dataclass(frozen=True)
class Phase:
    """Where a sweep breaks in: a first sync, or an incremental run after a settled first sync."""

    name: str
    n: int
    incremental: bool
    everyone: bool = False


PHASES = {
    p.name: p
    for p in (
        Phase("first", 40, False),
        Phase("incremental", 40, True),
        Phase("pages-first", 510, False),
        Phase("pages-incremental", 510, True, True),
    )
}


def prepare(world: World, phase: Phase, base: Snapshot | None = None) -> None:
    """The world just before the run a sweep breaks; an incremental phase starts from `base` (a
    settled first sync of the same seed) when given."""
    if not phase.incremental:
        seed_scenario(world, phase.n)
        return
    if base is None:
        seed_scenario(world, phase.n)
        settle(world)
    else:
        restore(world, base)
    world.clock.advance(600)
    incremental_changes(world, phase.everyone)


def reference(tmp: Path, phase: Phase) -> dict[str, Any]:
    """The end state of the phase run cleanly, in simulated time."""
    world = World(tmp, FakeClock())
    try:
        prepare(world, phase)
        codes = settle(world)
        assert codes[-1] == 0, f"the clean reference run of {phase.name} ends with {codes}"
        return end_state(world)
    finally:
        world.close()


def simulated_world(tmp: Path, base: Snapshot | None = None) -> World:
    """A world in simulated time; from a snapshot, at the snapshot's time."""
    tmp.mkdir(parents=True, exist_ok=True)
    return World(tmp, FakeClock(base.now) if base else FakeClock())


@dataclass(frozen=True)
class Base:
    """A seed run cleanly in real time: the first sync's end state and a snapshot of it, and the
    end state of the incremental changes run from there."""

    first: dict[str, Any]
    snap: Snapshot
    incremental: dict[str, Any]


def build_base(tmp: Path, phase: Phase, simulated: bool = False) -> Base:
    """References for the first sync and for `phase` (an incremental one) of `phase.n` people,
    and a snapshot of the settled first sync; in real time unless `simulated`."""

    def make(where: Path, snap: Snapshot | None = None) -> World:
        return simulated_world(where, snap) if simulated else real_time_world(where)

    world = make(tmp / "first")
    try:
        seed_scenario(world, phase.n)
        assert settle(world)[-1] == 0
        first, snap = end_state(world), snapshot(world, tmp)
    finally:
        world.close()
    world = make(tmp / "incremental", snap)
    try:
        prepare(world, phase, snap)
        assert settle(world)[-1] == 0
        return Base(first, snap, end_state(world))
    finally:
        world.close()


# the end state -----------------------------------------------------------------------------------
def end_state(world: World) -> dict[str, Any]:
    """What the three vendors hold, comparable across worlds."""
    return {
        "mailchimp": _members(world),
        "klaviyo": _profiles(world),
        **_events(world),
        "notes": _notes(world),
    }


def _members(world: World) -> dict[str, dict[str, Any]]:
    return {
        m["email_address"].lower(): {
            "status": m["status"],
            "merge_fields": dict(m["merge_fields"]),
            "tags": frozenset(t["name"] for t in m["tags"]),
        }
        for m in world.mailchimp.members(world.list_id)
    }


def _profiles(world: World) -> dict[str, dict[str, Any]]:
    sandbox = world.klaviyo
    with sandbox.lock:
        ids = list(sandbox.profiles.by_id)
        names = {list_id: kl.name for list_id, kl in sandbox.lists.items()}
    found = {}
    for profile in filter(None, map(sandbox.profile_by_id, ids)):
        marketing = profile["subscriptions"]["email"]["marketing"]
        found[str(profile.get("email") or profile["id"]).lower()] = {
            **{
                k: profile.get(k)
                for k in ("first_name", "last_name", "organization", "phone_number")
            },
            "properties": dict(profile["properties"]),
            "consent": marketing["consent"],
            "suppressed": tuple(sorted(s["reason"] for s in marketing["suppression"])),
            "lists": frozenset(names[list_id] for list_id in profile["lists"]),
        }
    return found


def _events(world: World) -> dict[str, Counter[Any]]:
    """Deal events by what they say (metric, person, deal, stage) and by the Kommo event their
    unique_id names (its type, lead and status: ids differ between worlds, these do not)."""
    kommo_events = {f"kommo-event-{e['id']}": e for e in world.kommo.events}
    statuses = {
        s["id"]: s["name"] for pid in world.kommo.pipelines for s in world.kommo.statuses(pid)
    }
    said, origin, ids = Counter(), Counter(), Counter()
    for event in world.klaviyo.events():
        if event["metric"] not in DEAL_METRICS:
            continue
        props = event["properties"]
        said[
            (
                event["metric"],
                str(event["email"]).lower(),
                props.get("deal_name"),
                props.get("deal_stage"),
                props.get("previous_stage"),
            )
        ] += 1
        origin[
            _origin(world, kommo_events.get(event["unique_id"]), statuses, event["unique_id"])
        ] += 1
        ids[event["unique_id"]] += 1
    return {"events": said, "event_origins": origin, "event_ids": ids}


def _origin(
    world: World, raw: dict[str, Any] | None, statuses: dict[int, str], unique_id: str
) -> tuple[Any, ...]:
    if raw is None:
        return ("not a Kommo event", unique_id)
    after = (raw.get("value_after") or [{}])[0].get("lead_status") or {}
    return (raw["type"], world.kommo.leads[raw["entity_id"]]["name"], statuses.get(after.get("id")))


def _notes(world: World) -> Counter[tuple[str, str, str]]:
    return Counter(
        (
            n["entity_type"],
            _entity_label(world, n["entity_type"], n["entity_id"]),
            DATE.sub("<date>", n["params"]["text"]),
        )
        for n in world.kommo.notes
    )


def _entity_label(world: World, entity: str, entity_id: int) -> str:
    if entity == "leads":
        return f"lead '{world.kommo.leads[entity_id]['name']}'"
    contact = world.kommo.contacts[entity_id]
    return f"{_email(world, entity_id)} ({contact['name']})"


def _email(world: World, contact_id: int) -> str:
    emails = world.kommo.field_texts(contact_id, world.kommo.email_field_id)
    return str(emails[0]).lower() if emails else f"contact {contact_id}"


# comparing --------------------------------------------------------------------------------------
COMPARED = ("mailchimp", "klaviyo", "events", "event_origins", "notes")


def differences(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Every difference, in words: "mailchimp p3@firm.io tags: {'Customer'} != {'In Progress'}"
    (expected first)."""
    found: list[str] = []
    for section in COMPARED:
        a, b = expected[section], got[section]
        if isinstance(a, Counter):
            found += [
                f"{section} {key}: {a[key]} != {b[key]}" for key in _keys(a, b) if a[key] != b[key]
            ]
        else:
            for key in _keys(a, b):
                found += _compare(f"{section} {key}", a.get(key), b.get(key))
    return found


def _keys(a: Iterable[Any], b: Iterable[Any]) -> list[Any]:
    return sorted(set(a) | set(b), key=repr)


def _compare(where: str, a: Any, b: Any) -> list[str]:
    if a is None or b is None:
        if a is b:
            return []
        return [
            f"{where}: {'missing' if b is None else 'not expected'} "
            f"({_show(a if b is None else b)})"
        ]
    if isinstance(a, dict) and isinstance(b, dict):
        return [line for key in _keys(a, b) for line in _compare_value(f"{where} {key}", a, b, key)]
    return [] if a == b else [f"{where}: {_show(a)} != {_show(b)}"]


def _compare_value(where: str, a: dict[str, Any], b: dict[str, Any], key: str) -> list[str]:
    if key not in a or key not in b:
        return [f"{where}: {_show(a.get(key, '<absent>'))} != {_show(b.get(key, '<absent>'))}"]
    if isinstance(a[key], dict) and isinstance(b[key], dict):
        return [
            line
            for sub in _keys(a[key], b[key])
            for line in _compare_value(f"{where}.{sub}", a[key], b[key], sub)
        ]
    return [] if a[key] == b[key] else [f"{where}: {_show(a[key])} != {_show(b[key])}"]


def _show(value: Any) -> str:
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(map(repr, value))) + "}" if value else "{}"
    if isinstance(value, dict) and len(repr(value)) > 200:
        return repr(value)[:200] + "…"
    return repr(value)


def duplicates(state: dict[str, Any]) -> list[str]:
    """Any event unique_id stored more than once, any note written more than once."""
    return [
        f"event {uid} stored {n} times" for uid, n in sorted(state["event_ids"].items()) if n > 1
    ] + [f"note {key} written {n} times" for key, n in sorted(state["notes"].items()) if n > 1]


def false_notes(world: World, state: dict[str, Any]) -> list[str]:
    """Notes on people who never unsubscribed at a vendor themselves (our own unsubscribes are no
    news), or on deals of no such person."""
    scenario: Scenario = world.scenario  # type: ignore[attr-defined]
    noted = scenario.noted
    allowed = {
        f"lead '{name}'"
        for name, lead in scenario.leads.items()
        if {_email(world, cid) for cid in world.kommo.leads[lead]["contact_ids"]} & noted
    }
    return [
        f"false note on {label}: {text}"
        for (_, label, text) in state["notes"]
        if label not in allowed and label.split(" ", 1)[0] not in noted
    ]


def check(expected: dict[str, Any], world: World) -> list[str]:
    """Everything wrong with the world: differences from the reference, duplicates, false notes."""
    state = end_state(world)
    return differences(expected, state) + duplicates(state) + false_notes(world, state)


class Stopwatch:
    """Wall time of a block, for the sweeps' reports."""

    def __enter__(self) -> Stopwatch:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.start
