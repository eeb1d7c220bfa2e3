"""A seeded, scriptable fault switch for the sandboxes: lost responses, resets, garbage, kills.

Every App has one (`app.faults`). A fault picks requests by method, path regex, body substring
and attempt: the N-th arrival of the same identity (method, path, sorted query, body), so a retry
is told apart from a first try whatever the thread timing; `query` also picks by query
parameters (one page of a paged read: {"page": "2"}). `chaos` faults a seeded share of
requests, deciding each one by a hash of (seed, identity, attempt) rather than a shared random
stream, so the same requests are hit in any arrival order. Chaos reads the identity with its
moments masked (ISO times, Unix seconds): a request that differs only by the clock reading it
carries (a window's end, a poll's time) is the same request, so simulated runs whose threads
advance the clock in another order still meet the same faults.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Request(Protocol):
    """What a fault reads of a request (the server's Request has it)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes


# Kinds answered without running the handler; the others run it first (the vendor acts).
EARLY_KINDS = frozenset({"status", "reset_before", "kill_before"})
LATE_KINDS = frozenset(
    {"reset_after", "delay", "truncate", "html", "cut_json", "no_content", "kill_after"}
)
KINDS = EARLY_KINDS | LATE_KINDS
KILL_KINDS = frozenset({"kill_before", "kill_after"})
CHAOS_KINDS = (
    "status",
    "reset_before",
    "reset_after",
    "truncate",
    "html",
    "cut_json",
    "no_content",
)
CHAOS_STATUSES = (500, 502, 503, 504, 429)
MOMENT = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|(?<![\d.])1[5-9]\d{8}(?:\.\d+)?(?![\d.])"
)


@dataclass
class Fault:
    """One scripted fault; `hits` counts the requests it has hit so far."""

    method: str = "*"
    path: str = ""
    kind: str = "status"
    status: int = 500
    body: Any = None
    headers: dict[str, str] | None = None
    times: int = 1
    attempt: int | None = None
    body_contains: str | bytes | None = None
    query: dict[str, str] | None = None
    delay: float = 0.0
    hits: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(KINDS)}")
        self.method = self.method.upper()
        self._pattern = re.compile(self.path)

    def matches(self, request: Request, attempt: int) -> bool:
        """True when this fault should hit `request`, the `attempt`-th of its identity."""
        return (
            (self.times == 0 or self.hits < self.times)
            and self.method in ("*", request.method)
            and (self.attempt is None or self.attempt == attempt)
            and self._pattern.search(request.path) is not None
            and (self.body_contains is None or _as_bytes(self.body_contains) in request.body)
            and (self.query is None or _query_matches(self.query, request.query))
        )


@dataclass(frozen=True)
class Chaos:
    """The settings of `FaultSwitch.chaos`."""

    rate: float
    seed: int
    kinds: tuple[str, ...]
    statuses: tuple[int, ...]
    methods: frozenset[str] | None
    exclude: re.Pattern[str] | None
    delay: float

    def pick(self, request: Request, digest: bytes, attempt: int) -> Fault | None:
        """A one-off fault when the hash of (seed, identity, attempt) falls under `rate`."""
        if self.methods is not None and request.method not in self.methods:
            return None
        if self.exclude is not None and self.exclude.search(request.path):
            return None
        roll = hashlib.sha256(f"{self.seed}:{attempt}:".encode() + digest).digest()
        if int.from_bytes(roll[:8], "big") / 2**64 >= self.rate:
            return None
        kind = self.kinds[int.from_bytes(roll[8:12], "big") % len(self.kinds)]
        status = self.statuses[int.from_bytes(roll[12:16], "big") % len(self.statuses)]
        return Fault(request.method, kind=kind, status=status, times=0, delay=self.delay, hits=1)


class FaultSwitch:
    """The faults of one sandbox; `pick` is called once per request, before anything else."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.victim_pid: int | None = None
        self.log: list[tuple[str, str, str]] = []
        self._chaos: Chaos | None = None
        self._arrivals: dict[bytes, int] = {}
        self._chaos_arrivals: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Arm `fault` (faults are tried in the order added, before chaos); returns it."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def chaos(
        self,
        rate: float,
        seed: int,
        kinds: Sequence[str] = CHAOS_KINDS,
        statuses: Sequence[int] = CHAOS_STATUSES,
        methods: Sequence[str] | None = None,
        exclude: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Fault a seeded share `rate` of requests (replaces earlier chaos settings)."""
        unknown = set(kinds) - KINDS
        if unknown or not kinds or not statuses:
            raise ValueError(f"chaos needs kinds from {sorted(KINDS)} and statuses")
        with self._lock:
            self._chaos = Chaos(
                rate,
                seed,
                tuple(kinds),
                tuple(statuses),
                frozenset(methods) if methods is not None else None,
                re.compile(exclude) if exclude else None,
                delay,
            )

    def clear(self) -> None:
        """Disarm every fault and the chaos; the log and arrival counts stay."""
        with self._lock:
            self.faults.clear()
            self._chaos = None

    def pick(self, request: Request) -> Fault | None:
        """Count this arrival of the request's identity; the fault it hits, if any."""
        digest = identity(request)
        with self._lock:
            attempt = self._arrivals[digest] = self._arrivals.get(digest, 0) + 1
            fault = self._scripted(request, attempt)
            if fault is None and self._chaos is not None:
                stable = identity(request, masked=True)
                arrival = self._chaos_arrivals[stable] = self._chaos_arrivals.get(stable, 0) + 1
                fault = self._chaos.pick(request, stable, arrival)
            if fault is not None:
                self.log.append((request.method, request.path, fault.kind))
            return fault

    def _scripted(self, request: Request, attempt: int) -> Fault | None:
        for fault in self.faults:
            if fault.matches(request, attempt):
                fault.hits += 1
                return fault
        return None

    def kill_victim(self) -> None:
        """SIGKILL `victim_pid` (the kill kinds); a kill fault without a victim is a test bug."""
        if self.victim_pid is None:
            raise RuntimeError("a kill fault hit but faults.victim_pid is not set")
        os.kill(self.victim_pid, signal.SIGKILL)


def identity(request: Request, masked: bool = False) -> bytes:
    """A digest of (method, path, sorted query, body): what makes two requests 'the same';
    `masked`: with the moments in query and body blanked."""
    query = sorted((name, tuple(values)) for name, values in request.query.items())
    head = repr((request.method, request.path, query))
    body = request.body
    if masked:
        head = MOMENT.sub("<moment>", head)
        body = MOMENT.sub("<moment>", body.decode("utf-8", "replace")).encode("utf-8")
    return hashlib.sha256(head.encode("utf-8") + b"\0" + body).digest()


def _query_matches(wanted: dict[str, str], query: dict[str, list[str]]) -> bool:
    """Every wanted parameter is there with a value that fully matches its regex."""
    return all(
        any(re.fullmatch(pattern, value) for value in query.get(name, []))
        for name, pattern in wanted.items()
    )


def _as_bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text
