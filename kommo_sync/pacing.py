"""Kommo's pace: request starts spaced on a slot schedule, several requests in flight.

Kommo counts arrivals (about 7 a second, blocks after a streak of 429s), so what is spaced is
when each request starts, not when the previous one ended: a page that takes 300 ms to come back
does not hold the next start back. The slots come from a `SlotSchedule`; the one here lives in
the process (`LocalSchedule`), and one kept outside it (a file or a database row shared by
several processes: shared_pacing.py) gives the same three answers from the same arithmetic
(`book`, `start_or_wait`, `held`) on its own rows. A booked slot is claimed when the
request really starts: a thread that wakes late (a pause of the interpreter, a busy core) must
not start right before the next one, or Kommo would count two arrivals at once; so a start is
never less than one interval after the last real start. A 429 holds the schedule, so every
thread waits out the vendor's hint instead of each meeting its own 429 (no streak forms).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Protocol

from kommo_sync.clock import Clock

MAX_IN_FLIGHT = 8  # Kommo requests at once, at most (pages read ahead and the main thread's)
EWMA_WEIGHT = 0.2  # the weight of the newest answer time in the running estimate
HEADROOM = 1.2  # answers vary (the model's ±30 %): enough in flight for a slow one
CLAIM_SLACK = 0.002  # seconds a claim may come early (sleep granularity)


class SlotSchedule(Protocol):
    """Where request starts are booked. Moments are on `clock.monotonic()`'s scale; a schedule
    kept outside the process converts from its own (shared wall time) when it answers."""

    def take(self, interval: float) -> float:
        """Book the next start at least `interval` after the previous one; return its moment."""
        ...

    def claim(self, interval: float) -> float | None:
        """Start now if the last real start is at least `interval` ago (None), else the moment
        to wait for before claiming again."""
        ...

    def hold(self, seconds: float) -> None:
        """No start earlier than `seconds` from now (a 429's wait)."""
        ...


@dataclass(frozen=True)
class Slots:
    """A schedule's memory: the next bookable start, the last real start, the end of a hold,
    all on one time scale (the process's monotonic clock, or a shared store's wall time)."""

    next: float = 0.0
    last_start: float = -math.inf
    held_until: float = -math.inf


def book(slots: Slots, now: float, interval: float) -> tuple[Slots, float]:
    """`take` on plain data: the slot booked and the schedule after it."""
    start = max(now, slots.next)
    return replace(slots, next=start + interval), start


def start_or_wait(slots: Slots, now: float, interval: float) -> tuple[Slots, float | None]:
    """`claim` on plain data: None (started now, recorded) or the moment to wait for."""
    earliest = max(slots.last_start + interval, slots.held_until)
    if now < earliest - CLAIM_SLACK:
        return slots, earliest
    return Slots(max(slots.next, now + interval), now, slots.held_until), None


def held(slots: Slots, now: float, seconds: float) -> Slots:
    """`hold` on plain data: no start before `now + seconds`."""
    until = now + seconds
    return Slots(max(slots.next, until), slots.last_start, max(slots.held_until, until))


class LocalSchedule:
    """The slot schedule of one process: burst of one, starts spaced by the interval."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self._slots = Slots()
        self._lock = threading.Lock()

    def take(self, interval: float) -> float:
        with self._lock:
            self._slots, start = book(self._slots, self.clock.monotonic(), interval)
            return start

    def claim(self, interval: float) -> float | None:
        with self._lock:
            self._slots, moment = start_or_wait(self._slots, self.clock.monotonic(), interval)
            return moment

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._slots = held(self._slots, self.clock.monotonic(), seconds)

    @property
    def next_start(self) -> float:
        """The earliest moment the next booking can get (for tests and reports)."""
        with self._lock:
            return self._slots.next


class Pacer:
    """Spaces request starts at most `rate` per second across every thread sharing it, and says
    how many requests to keep in flight so answers slower than a slot do not slow the pace."""

    def __init__(self, rate: float | None, clock: Clock, schedule: SlotSchedule | None = None):
        self.interval = 1.0 / rate if rate else 0.0
        self.clock = clock
        self.schedule = schedule or LocalSchedule(clock)
        self.answer_time = 0.0  # running estimate, seconds from start to a read answer
        self._lock = threading.Lock()

    def wait_turn(self) -> None:
        if not self.interval:
            return
        moment: float | None = self.schedule.take(self.interval)
        while moment is not None:
            self.clock.sleep_until(moment)
            moment = self.schedule.claim(self.interval)

    def hold(self, seconds: float) -> None:
        """Every thread waits `seconds` before its next start (a 429 names the wait)."""
        if self.interval:
            self.schedule.hold(seconds)

    def answered(self, seconds: float) -> None:
        """An answer took `seconds` from its start: the estimate moves toward it."""
        with self._lock:
            if self.answer_time:
                seconds = (1 - EWMA_WEIGHT) * self.answer_time + EWMA_WEIGHT * seconds
            self.answer_time = seconds

    def depth(self, most: int = MAX_IN_FLIGHT) -> int:
        """Requests to keep in flight: one more than the slots an answer spans, with headroom.
        On simulated time waits of several threads cannot overlap (a FakeClock jumps to the
        latest), so requests there go one at a time."""
        if not self.interval or self.clock.simulated:
            return 1
        spans = math.floor(HEADROOM * self.answer_time / self.interval)
        return max(1, min(most, 1 + spans))
