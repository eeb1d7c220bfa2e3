"""What a run did, as cli, report and the JSON output render it: its options, counts, the
people and changes it planned, rejections, notes, and each destination's standing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kommo_sync.exits import EXIT_CONFIG, EXIT_FATAL, EXIT_OK, EXIT_REJECTED
from kommo_sync.model import Person
from kommo_sync.plan import Change

DETAIL_LIMIT = 2000


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    since: int | None = None
    until: int | None = None
    full_resync: bool = False  # every mirrored person re-planned, fingerprints ignored
    reconcile: tuple[str, ...] = ()  # destinations whose holdings are read and repaired first
    reconcile_kommo: bool = False  # every mirrored contact checked against Kommo by id
    only: frozenset[int] | None = None  # `retry --now`: plan and push only these contacts

    @property
    def mode(self) -> str:
        if self.only is not None:
            return "retry"
        if self.reconcile or self.reconcile_kommo:
            return "reconcile"
        return "backfill" if self.since is not None else "run"


@dataclass(frozen=True)
class PersonRow:
    """One changed person as the report shows it."""

    contact_id: int
    email: str | None
    stage: str
    tag: str
    deal: str | None
    deal_id: int | None

    @classmethod
    def of(cls, person: Person, tag: str) -> PersonRow:
        deal = person.deal
        return cls(
            contact_id=person.contact_id,
            email=person.email,
            stage=person.stage.value,
            tag=tag,
            deal=deal.name if deal else None,
            deal_id=deal.id if deal else None,
        )


@dataclass
class RunResult:
    run_id: int | None
    mode: str
    dry_run: bool
    window: tuple[int, int]
    counts: Counter[str] = field(default_factory=Counter)
    people: list[PersonRow] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)  # what a reconcile found
    destinations: dict[str, dict[str, str]] = field(default_factory=dict)
    started_at: int = 0
    finished_at: int = 0
    totals: Counter[str] = field(
        default_factory=Counter
    )  # rows offered to each listing, kept or not
    account: str = "default"  # the config's `account:` label

    @property
    def rejected(self) -> int:
        return self.counts["rejected"]

    @property
    def set_aside(self) -> list[str]:
        """Destinations that failed and were set aside for this run (the run exits 4, or 2 when
        only their configuration is wrong: an audience or list that does not exist…)."""
        return [name for name, info in self.destinations.items() if info["status"] == "set_aside"]

    @property
    def set_aside_by_config_only(self) -> bool:
        return bool(self.set_aside) and all(
            self.destinations[n]["cause"] == "config" for n in self.set_aside
        )

    @property
    def exit_code(self) -> int:
        """0 done; 1 records rejected; 4 a destination set aside (2 when only its configuration
        is wrong)."""
        if self.set_aside:
            return EXIT_CONFIG if self.set_aside_by_config_only else EXIT_FATAL
        return EXIT_REJECTED if self.rejected else EXIT_OK

    def keep(self, listing: str, rows: Iterable[Any]) -> None:
        """Add rows to a report listing while it holds fewer than DETAIL_LIMIT; `totals` counts
        them all."""
        kept: list[Any] = getattr(self, listing)
        for row in rows:
            self.totals[listing] += 1
            if len(kept) < DETAIL_LIMIT:
                kept.append(row)
