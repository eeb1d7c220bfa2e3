"""Injectable time: real in production and benchmarks, simulated in tests.

Everything that waits (retries, pacing, job polling, sandbox latency and rate windows) goes
through a Clock, so tests of backoff and pacing run in milliseconds. A Clock also carries the
run's stop flag: once a stop is asked for (SIGTERM, SIGINT), every sleep raises Interrupted
within a tenth of a second, and `check` raises at the safe points between requests.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from kommo_sync.errors import Interrupted

SLICE = 0.1  # a real sleep notices a stop within this many seconds


def iso_utc(timestamp: float) -> str:
    """Unix seconds as ISO 8601 in UTC, the form vendor filters take (2026-01-01T00:00:00+00:00)."""
    return datetime.fromtimestamp(int(timestamp), tz=UTC).isoformat()


def epoch_of(text: str | None) -> int:
    """An ISO 8601 time from a vendor (with `Z` or an offset) as Unix seconds; 0 when absent."""
    if not text:
        return 0
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


class StopFlag:
    """A stop asked for, with the signal that asked. A plain attribute rather than a
    threading.Event: a signal handler runs on the thread it interrupted, and Event.set takes a
    lock that this very thread may hold (inside Event.wait), which would deadlock."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int) -> None:
        self.signum = signum

    def clear(self) -> None:
        self.signum = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


class Clock:
    """Wall-clock time and real sleeping, in slices so a stop ends a sleep at once."""

    _stop: StopFlag | None = None
    simulated = False  # whether sleeps of several threads fail to overlap (FakeClock)

    def __init__(self, stop: StopFlag | None = None):
        """`stop`: a flag the caller holds (the Python API's `stop=`), else one made on first
        use."""
        self._stop = stop

    @property
    def stop(self) -> StopFlag:
        """The flag this clock's sleeps honour (made on first use, so a subclass need not call
        an __init__)."""
        if self._stop is None:
            self._stop = StopFlag()
        return self._stop

    def check(self) -> None:
        """A safe point: raise Interrupted if a stop was asked for."""
        signum = self.stop.signum
        if signum is not None:
            raise Interrupted(signum)

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self.check()
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, SLICE))
            self.check()

    def sleep_until(self, moment: float) -> None:
        """Sleep until the monotonic clock reaches `moment` (pacing slots shared by threads)."""
        self.sleep(moment - self.monotonic())


class FakeClock(Clock):
    """Simulated time: sleep() advances the clock at once; shared safely between threads. Its
    sleeps honour the stop flag too; `advance` (time passing in a test) does not."""

    simulated = True

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
        self.check()
        self.advance(seconds)

    def sleep_until(self, moment: float) -> None:
        """Threads waiting for their slots wait side by side: the clock moves to the latest slot."""
        self.check()
        with self._lock:
            self.slept.append(max(0.0, moment - self._now))
            self._now = max(self._now, moment)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            if seconds > 0:
                self._now += seconds
