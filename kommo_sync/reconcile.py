"""`reconcile`: what each destination holds for the people this tool pushed there, read back
and compared with what was pushed; the drift is repaired by the run's own plan and push.

Right after the feedback read, each chosen destination that can (`Reconcilable`) is given the
pushed record of everyone it manages and returns the drift per person. Opt-outs it found go
to the feedback stage, the one path that makes suppressions and notes. Every other drift
rewrites the person's pushed record so the plan no longer trusts it (no fingerprint: every
field, the tag and the lists are sent again; a member gone says so, and is added back as a new
person, which never re-subscribes anyone) and queues the person: the same run's plan and push
repair them through the bulk paths. A dry run's state is rolled back, so it shows the repairs
in its plan and changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import partial
from typing import Any

from kommo_sync.aside import SetAside
from kommo_sync.destinations.base import (
    Destination,
    Drift,
    DriftFound,
    DriftKind,
    Reconcilable,
    reconcilables,
)
from kommo_sync.feedback import FeedbackStage
from kommo_sync.plan import STATUS
from kommo_sync.planning import unverified
from kommo_sync.state import StateStore
from kommo_sync.tally import Tally

CONFIRM_ABOVE = 2_000  # estimated requests above which `reconcile` asks for --yes


class ReconcileStage:
    """Given its collaborators: the state, the feedback stage, the tally, the set-aside record
    and the names of the destinations to reconcile (none: the run is no reconcile)."""

    def __init__(
        self,
        state: StateStore,
        feedback: FeedbackStage,
        tally: Tally,
        aside: SetAside,
        names: Iterable[str],
    ):
        self.state, self.feedback, self.tally, self.aside = state, feedback, tally, aside
        self.names = set(names)

    def read(self, destinations: list[Destination]) -> None:
        """Each chosen destination on its own: one that fails is set aside, the others go on."""
        for destination in reconcilables(destinations):
            if destination.name in self.names:
                self.aside.guarded(destination.name, partial(self._reconcile, destination))

    def _reconcile(self, destination: Reconcilable) -> None:
        name = destination.name
        pushed = self.state.pushed(name, self.state.pushed_ids(name))
        found = destination.read_drift(pushed)
        self.feedback.take_found(name, found.unsubscribes)
        repaired = self._repair(name, found.drift)
        self._report(name, pushed, found, repaired)

    def _repair(self, name: str, drift: list[Drift]) -> int:
        """Rewrite the pushed record of each person with drift beyond an opt-out (read again:
        the feedback stage may just have set its status) and queue them for this run's plan."""
        statuses = repairs(drift)
        current = self.state.pushed(name, statuses)
        rows = [(pid, "", repaired(current[pid], statuses[pid])) for pid in sorted(current)]
        with self.state.transaction():
            self.state.record_pushed(name, rows)
            self.state.mark_dirty(pid for pid, _, _ in rows)
        return len(rows)

    def _report(
        self, name: str, pushed: dict[int, dict[str, Any]], found: DriftFound, repaired: int
    ) -> None:
        kinds = Counter(f"{name}.drift.{d.kind}" for d in found.drift)
        people = len({d.person_id for d in found.drift})
        self.tally.count(
            **kinds,
            **{
                f"{name}.reconcile.people": len(pushed),
                f"{name}.reconcile.drifted": people,
                f"{name}.reconcile.repairs": repaired,
                f"{name}.reconcile.requests": found.requests,
                "reconcile.requests": found.requests,
            },
        )
        self.tally.keep("drift", (drift_row(name, d, pushed.get(d.person_id)) for d in found.drift))


def repairs(drift: Iterable[Drift]) -> dict[int, str | None]:
    """The people a plan must repair, each with the status their record takes (None: kept).
    An opt-out alone needs none: it becomes a suppression and the record's status."""
    statuses: dict[int, str | None] = {}
    for item in drift:
        if item.kind != DriftKind.UNSUBSCRIBED:
            statuses[item.person_id] = item.status or statuses.get(item.person_id)
    return statuses


def repaired(record: dict[str, Any], status: str | None) -> dict[str, Any]:
    """The record the plan no longer trusts: without its fingerprint, and with the status the
    drift says (a member gone) where it says one."""
    record = unverified(record)
    if status is not None:
        record[STATUS] = status
    return record


def drift_row(name: str, drift: Drift, record: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "destination": name,
        "contact_id": drift.person_id,
        "email": (record or {}).get("email"),
        "kind": str(drift.kind),
        "detail": drift.detail,
    }


def chosen(destinations: Iterable[Destination], only: str | None) -> tuple[str, ...]:
    """The destinations a reconcile reads: every one that can, or only the one named."""
    return tuple(d.name for d in reconcilables(destinations) if only in (None, d.name))


def estimate(
    state: StateStore, destinations: Iterable[Destination], names: Iterable[str]
) -> dict[str, int]:
    """Each chosen destination's expected requests, for the people pushed there."""
    wanted = set(names)
    return {
        d.name: d.reconcile_cost(len(state.pushed_ids(d.name)))
        for d in reconcilables(destinations)
        if d.name in wanted
    }
