"""What every stage reports into: the run's counters and report listings, and the progress
heartbeat. Stages get this, never the run itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from kommo_sync import logs
from kommo_sync.results import RunResult

Progress = Callable[[str, Counter[str]], None]


class Tally:
    def __init__(self, result: RunResult, progress: Progress | None = None):
        self.result = result
        self.progress = progress or (lambda phase, counts: None)
        self.phase = "prepare"

    def enter(self, phase: str) -> None:
        """Name the phase for progress and for every log record from now on."""
        self.phase = phase
        logs.bind(phase=phase)
        self.progress(phase, self.result.counts)

    def count(self, **amounts: int) -> None:
        """Add to the run's counters (zero amounts are not recorded) and report progress:
        whatever a phase does is counted, so every phase gets its heartbeat."""
        for key, amount in amounts.items():
            if amount:
                self.result.counts[key] += amount
        self.progress(self.phase, self.result.counts)

    def keep(self, listing: str, rows: Iterable[Any]) -> None:
        """Rows for one of the report's listings (changes, people, notes, rejections)."""
        self.result.keep(listing, rows)

    def warn(self, text: str) -> None:
        """Something the user must know although the run went on."""
        self.result.warnings.append(text)

    def unmatched(self, email: str) -> None:
        """An address a destination reported that no Kommo contact holds."""
        self.result.unmatched.append(email)
