"""Injectable time: real in production and benchmarks, simulated in tests.

Everything that waits (retries, pacing, job polling, sandbox latency and rate windows) goes
through a Clock, so tests of backoff and pacing run in milliseconds.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


def iso_utc(timestamp: float) -> str:
    """Unix seconds as ISO 8601 in UTC, the form vendor filters take (2026-01-01T00:00:00+00:00)."""
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).isoformat()


def epoch_of(text: str | None) -> int:
    """An ISO 8601 time from a vendor (with `Z` or an offset) as Unix seconds; 0 when absent."""
    if not text:
        return 0
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class Clock:
    """Wall-clock time and real sleeping."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def sleep_until(self, moment: float) -> None:
        """Sleep until the monotonic clock reaches `moment` (pacing slots shared by threads)."""
        self.sleep(moment - self.monotonic())


class FakeClock(Clock):
    """Simulated time: sleep() advances the clock at once; shared safely between threads."""

    def __init__(self, start: float = 1_767_225_600.0):  # 2026-01-01T00:00:00Z
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.now()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            if seconds > 0:
                self._now += seconds

    def sleep_until(self, moment: float) -> None:
        """Threads waiting for their slots wait side by side: the clock moves to the latest slot."""
        with self._lock:
            self.slept.append(max(0.0, moment - self._now))
            self._now = max(self._now, moment)

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)
