"""One destination's changes for a batch of people: what was pushed for them (found under any of
their cards), the destination's plan, and the rejections that still hold changes back."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kommo_sync.destinations.base import Destination
from kommo_sync.model import Person
from kommo_sync.plan import Change, Plan
from kommo_sync.state import StateStore
from kommo_sync.tally import Tally


def plan_changes(
    state: StateStore,
    destination: Destination,
    people: list[Person],
    tally: Tally,
    full_resync: bool = False,
) -> list[Change]:
    """The changes to push; skips, actions and rejections still holding are counted."""
    name = destination.name
    pushed = pushed_for(state, name, people)
    if full_resync:
        pushed = {pid: unverified(record) for pid, record in pushed.items()}
    suppressed = state.suppressed(p.email for p in people if p.email)
    plan = destination.plan(people, pushed, suppressed)
    changes = _without_known_rejections(state, name, plan, tally)
    tally.count(**Counter(f"{name}.skipped.{skip.reason}" for skip in plan.skipped))
    tally.count(**Counter(f"{name}.{change.action}" for change in changes))
    tally.count(**plan.counts)
    tally.keep("changes", changes)
    return changes


def pushed_for(state: StateStore, name: str, people: list[Person]) -> dict[int, dict[str, Any]]:
    """What was pushed for each person, by identity (the group's lowest contact id). A record
    kept under another card of the same email (a lower-id twin appeared, or was restored) moves
    to the identity, so the person keeps one member and one profile, and no later exit of that
    card touches them."""
    cards = {p.contact_id: p.contact_ids or (p.contact_id,) for p in people}
    rows = state.pushed(name, [cid for ids in cards.values() for cid in ids])
    moves = []
    for identity, ids in cards.items():
        other = next((cid for cid in ids if cid in rows), None)
        if identity not in rows and other is not None:
            moves.append((other, identity))
            rows[identity] = rows.pop(other)
    if moves:
        with state.transaction():
            state.move_pushed(moves)
    return {identity: rows[identity] for identity in cards if identity in rows}


def unverified(record: dict[str, Any]) -> dict[str, Any]:
    """A pushed record without its fingerprint (`run --full-resync`): the destination no longer
    trusts what it holds to match it, so it sends the whole desired state again, while the
    identity and statuses in the record (an unsubscribe) still apply."""
    return {key: value for key, value in record.items() if key != "fingerprint"}


def _without_known_rejections(
    state: StateStore, name: str, plan: Plan, tally: Tally
) -> list[Change]:
    """A permanent rejection, or an acknowledged one (`rejections --clear`), is retried only
    when the person's data (fingerprint) changes, or once `retry` re-queues it."""
    known = state.rejections(name, {c.person_id for c in plan.changes})
    kept = [c for c in plan.changes if not _held(known.get(c.person_id), c.fingerprint)]
    tally.count(**{f"{name}.still_rejected": len(plan.changes) - len(kept)})
    return kept


def _held(rejection: tuple[str, str] | None, fingerprint: str) -> bool:
    """Whether a recorded rejection holds back a change with this fingerprint."""
    return rejection in {("permanent", fingerprint), ("acknowledged", fingerprint)}
