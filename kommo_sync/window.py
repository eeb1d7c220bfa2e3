"""The one window rule, and the names of every cursor.

A run reads each source (Kommo contacts and leads, Kommo's lead events, each destination's
feedback) in a window `(since, until]`: a backfill reads its own range; a run reads from the
source's cursor minus the overlap (so a record changed while the last run read is read again),
never below the source's floor, up to this run's start; a source without a cursor starts at its
initial value. The cursors move to the run's start only when the run has recorded everything.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTACTS = "kommo.updated_at"
EVENTS = "kommo.events"
EVENTS_START = "kommo.events.start"
LIFECYCLE = "kommo.lifecycle"
# when the mirror was last read whole by this format (every custom field, tag, company kept)
WHOLE = "kommo.mirror_whole"  # contacts and leads deleted, restored or merged
START = ".start"  # suffix: where a source's history begins for this account


def feedback(destination: str) -> str:
    """The cursor of a destination's feedback; `feedback(name) + START` is where it began."""
    return f"feedback.{destination}"


@dataclass(frozen=True)
class Windows:
    """This run's windows: `started` is the run's start (every run window ends there),
    `backfill` the range a backfill was given (None for a run)."""

    started: int
    overlap: int
    backfill: tuple[int, int] | None = None

    @property
    def mode(self) -> str:
        return "backfill" if self.backfill is not None else "run"

    @property
    def end(self) -> int:
        """Where every window of this run ends."""
        return self.backfill[1] if self.backfill is not None else self.started

    def of(self, cursor: int | None, floor: int = 0, initial: int = 0) -> tuple[int, int]:
        """The window of a source whose cursor is `cursor` (None: never read)."""
        if self.backfill is not None:
            return self.backfill
        if cursor is None:
            return initial, self.started
        return max(floor, cursor - self.overlap), self.started
