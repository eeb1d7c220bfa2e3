"""Cutting work into the batch sizes each API (and SQLite) accepts, and waiting for bulk jobs."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from kommo_sync.errors import RetryLater

T = TypeVar("T")
J = TypeVar("J")


class Memory(Protocol):
    """A destination's memory as the timer uses it (DestinationMemory)."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` items (none for no items)."""
    values: Sequence[T] = items if isinstance(items, (list, tuple)) else list(items)
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


JOB_TIMES = "job_times"  # a destination's memory key for its timer's samples


class JobTimer:
    """When to poll a vendor's bulk jobs. It learns from the jobs that finished how long one of
    n items takes (a fixed part plus a part per item, fitted on the vendor's own created and
    completed times), so the first poll lands about when the job is done: one poll per job and
    little idle time. Until a job has finished it polls as Mailchimp advises for its batches:
    after about 5 s, then backing off (×1.5) to a minute. A job still not done after `limit`
    seconds is given up (transient), so a stuck vendor job never holds a run for long.

    One timer a destination (its jobs are alike); the samples are kept in the destination's
    memory across runs (`remembered`/`restore`), so a cron run's first poll is well aimed too."""

    FIRST = 5.0
    LONGEST = 60.0
    MARGIN = 1.0  # vendor times are whole seconds
    SAMPLES = 20
    LIMIT = 600.0

    def __init__(self, first: float = FIRST, limit: float = LIMIT) -> None:
        self.first, self.limit = first, limit
        self.samples: deque[tuple[int, float]] = deque(maxlen=self.SAMPLES)
        self.lock = threading.Lock()

    def delays(self, items: int) -> Iterator[float]:
        """Seconds to sleep before each poll of a job of `items` items."""
        estimate = self.estimate(items)
        delay = (
            self.first if estimate is None else min(max(estimate + self.MARGIN, 1.0), self.LONGEST)
        )
        yield delay
        delay = self.first if estimate is None else max(1.0, delay / 4)
        while True:
            delay = min(delay * 1.5, self.LONGEST)
            yield delay

    def wait(
        self,
        job: J,
        items: int,
        done: Callable[[J], bool],
        poll: Callable[[J], J],
        sleep: Callable[[float], None],
        name: str,
    ) -> J:
        """Poll `job` (of `items` items; `name` names it in messages) until `done`, sleeping as
        `delays` says, the last poll at `limit`; then RetryLater: its records are held back and
        the next run sends them again."""
        waited, delays = 0.0, self.delays(items)
        while not done(job):
            if waited >= self.limit:
                raise RetryLater(
                    f"{name} did not finish within {_duration(self.limit)}; "
                    "its records are held back for the next run"
                )
            delay = min(next(delays), self.limit - waited)
            sleep(delay)
            waited += delay
            job = poll(job)
        return job

    def remembered(self) -> list[list[float]]:
        """The samples, as the destination's memory keeps them."""
        with self.lock:
            return [[n, t] for n, t in self.samples]

    def restore(self, samples: object) -> None:
        """Samples an earlier run kept (anything malformed is ignored: the timer relearns)."""
        rows = samples if isinstance(samples, list) else []
        pairs = [
            (int(row[0]), float(row[1]))
            for row in rows
            if isinstance(row, list)
            and len(row) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
        ]
        with self.lock:
            self.samples.extend(pairs[-self.SAMPLES :])

    def keep_in(self, memory: Memory) -> None:
        """Kept in the destination's memory, for the next run (a process of its own)."""
        samples = self.remembered()
        if samples and samples != memory.get(JOB_TIMES):
            memory.set(JOB_TIMES, samples)

    def finished(self, items: int, seconds: float) -> None:
        """A job of `items` items took `seconds`, by the vendor's clock."""
        if seconds >= 0:
            with self.lock:
                self.samples.append((items, seconds))

    def estimate(self, items: int) -> float | None:
        """Seconds for `items`, by a least-squares line through the samples (None without any).
        With one size seen, a job of another size is guessed half fixed, half per item: a small
        job after large ones (an incremental run after the first sync) is then polled about
        when it ends, not when a large one would."""
        with self.lock:
            samples = list(self.samples)
        if not samples:
            return None
        mean_n = sum(n for n, _ in samples) / len(samples)
        mean_t = sum(t for _, t in samples) / len(samples)
        spread = sum((n - mean_n) ** 2 for n, _ in samples)
        if not spread:  # one size seen: no line to fit, so half fixed and half per item
            return mean_t / 2 + (mean_t / 2) * items / mean_n if mean_n else mean_t
        per_item = max(0.0, sum((n - mean_n) * (t - mean_t) for n, t in samples) / spread)
        fixed = max(0.0, mean_t - per_item * mean_n)
        return fixed + per_item * items


def _duration(seconds: float) -> str:
    """`120` → "2 minutes", `90` → "90 s"."""
    minutes, rest = divmod(int(seconds), 60)
    if rest or not minutes or seconds != int(seconds):
        return f"{seconds:g} s"
    return f"{minutes} minute{'s' if minutes > 1 else ''}"
