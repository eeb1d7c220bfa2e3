"""Network models for the sandboxes: how long each answer takes, and how long vendor jobs run.

A `Latency` is one vendor's list of (method, path pattern, `Delay`) with a default; the App
applies it after its handler (so the answer's size is known) and before the answer is sent, on
its injected clock and with its own seeded RNG (a run is repeatable). `MailchimpJobs` and
`KlaviyoJobs` say how long the vendors' asynchronous jobs take; the sandboxes consult them where
a job's completion time is computed. A `Network` bundles the three vendors' latency and job
models under one name: `fast` (tests, `demo`, `sandbox`: no added latency, today's job times),
`realistic` (the benchmarks' default) and `slow` (every figure of `realistic` doubled).
The figures and their sources are in benchmarks/README.md.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace

KB = 1024


@dataclass(frozen=True)
class Delay:
    """Seconds one answer takes: uniform in [low, high], plus `per_kb` per KB of the response and
    `per_item` per entry of the request body's `items` list, all times 1 ± `jitter`."""

    low: float = 0.0
    high: float = 0.0
    per_kb: float = 0.0
    jitter: float = 0.0
    per_item: float = 0.0
    items: str = ""

    def seconds(self, body: bytes, size: int, rng: random.Random) -> float:
        base = rng.uniform(self.low, self.high) if self.high > self.low else self.low
        total = base + self.per_kb * size / KB + self.per_item * self._count(body)
        return total * (1 + rng.uniform(-self.jitter, self.jitter)) if self.jitter else total

    def _count(self, body: bytes) -> int:
        """How many entries the request sends under `items` (0 when it is not a JSON object)."""
        if not self.per_item or not body:
            return 0
        try:
            entries = json.loads(body).get(self.items)
        except (ValueError, AttributeError):
            return 0
        return len(entries) if isinstance(entries, list) else 0

    def scaled(self, factor: float) -> Delay:
        return replace(
            self,
            low=self.low * factor,
            high=self.high * factor,
            per_kb=self.per_kb * factor,
            per_item=self.per_item * factor,
        )


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    delay: Delay


def route(method: str, pattern: str, delay: Delay) -> Route:
    """A rule for `method` and a path pattern with {name} placeholders (as App.route takes)."""
    regex = "^" + re.sub(r"\{(\w+)\}", r"[^/]+", pattern) + "/?$"
    return Route(method, re.compile(regex), delay)


@dataclass(frozen=True)
class Latency:
    """One vendor's answer delays: the first matching route's, else the default."""

    routes: tuple[Route, ...] = ()
    default: Delay = Delay()

    def delay_for(self, method: str, path: str) -> Delay:
        for rule in self.routes:
            if rule.method == method and rule.pattern.match(path):
                return rule.delay
        return self.default

    def seconds(self, method: str, path: str, body: bytes, size: int, rng: random.Random) -> float:
        return self.delay_for(method, path).seconds(body, size, rng)

    def scaled(self, factor: float) -> Latency:
        return Latency(
            tuple(replace(rule, delay=rule.delay.scaled(factor)) for rule in self.routes),
            self.default.scaled(factor),
        )

    @property
    def silent(self) -> bool:
        """True when no answer is ever delayed (the App then skips the model)."""
        delays = [rule.delay for rule in self.routes] + [self.default]
        return not any(d.high or d.low or d.per_kb or d.per_item for d in delays)

    def sized(self, method: str, path: str) -> bool:
        """Whether the delay of this request depends on the size of its answer."""
        return bool(self.delay_for(method, path).per_kb)


def uniform(low: float, high: float) -> Latency:
    """Every answer delayed by a uniform draw from [low, high] seconds."""
    return Latency(default=Delay(low, high))


@dataclass(frozen=True)
class MailchimpJobs:
    """A `/batches` job: `pending` seconds after it is submitted (or after the batch before it
    finishes: they run one at a time) it starts, and finishes `base` + `per_operation` × its
    operations later."""

    pending: float = 1.0
    base: float = 1.0
    per_operation: float = 0.001

    def seconds(self, operations: int) -> float:
        """Submission to finished, for a batch that waits for no other."""
        return self.pending + self.base + self.per_operation * operations

    def scaled(self, factor: float) -> MailchimpJobs:
        return MailchimpJobs(self.pending * factor, self.base * factor, self.per_operation * factor)


@dataclass(frozen=True)
class KlaviyoJobs:
    """A profile import job is queued `import_queued` seconds, then processes for `import_base`
    + `import_per_row` × its rows. Bulk subscribe and event jobs answer 202 at once and take
    effect `subscribe_after` / `events_after` seconds later (0: at once)."""

    import_queued: float = 1.0
    import_base: float = 1.0
    import_per_row: float = 0.001
    subscribe_after: float = 0.0
    events_after: float = 0.0

    def import_seconds(self, rows: int) -> float:
        return self.import_queued + self.import_base + self.import_per_row * rows

    def scaled(self, factor: float) -> KlaviyoJobs:
        return KlaviyoJobs(
            self.import_queued * factor,
            self.import_base * factor,
            self.import_per_row * factor,
            self.subscribe_after * factor,
            self.events_after * factor,
        )


@dataclass(frozen=True)
class Network:
    """The three vendors' answer delays and job durations under one name."""

    name: str
    kommo: Latency = Latency()
    mailchimp: Latency = Latency()
    klaviyo: Latency = Latency()
    mailchimp_jobs: MailchimpJobs = MailchimpJobs()
    klaviyo_jobs: KlaviyoJobs = KlaviyoJobs()

    def scaled(self, name: str, factor: float) -> Network:
        return Network(
            name,
            self.kommo.scaled(factor),
            self.mailchimp.scaled(factor),
            self.klaviyo.scaled(factor),
            self.mailchimp_jobs.scaled(factor),
            self.klaviyo_jobs.scaled(factor),
        )


OTHER_REQUEST = Delay(0.060, 0.150)
KOMMO_PAGE = Delay(0.080, 0.080, per_kb=0.0005, jitter=0.30)
KOMMO_LISTS = ("contacts", "leads", "companies", "events")
REALISTIC = Network(
    "realistic",
    kommo=Latency(
        tuple(route("GET", f"/api/v4/{name}", KOMMO_PAGE) for name in KOMMO_LISTS),
        OTHER_REQUEST,
    ),
    mailchimp=Latency(
        # batch subscribe: 1.5 s per 500 members on top of the request's own latency
        (
            route(
                "POST", "/3.0/lists/{list_id}", Delay(0.060, 0.150, per_item=0.003, items="members")
            ),
        ),
        OTHER_REQUEST,
    ),
    klaviyo=Latency(default=OTHER_REQUEST),
    mailchimp_jobs=MailchimpJobs(pending=1.0, base=7.0, per_operation=0.002),
    klaviyo_jobs=KlaviyoJobs(
        import_queued=1.0,
        import_base=4.0,
        import_per_row=0.001,
        subscribe_after=20.0,
        events_after=3.0,
    ),
)
NETWORKS = {
    "fast": Network("fast"),
    "realistic": REALISTIC,
    "slow": REALISTIC.scaled("slow", 2.0),
}


def network(name: str) -> Network:
    """The named model (KeyError naming the choices when unknown)."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise KeyError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None
