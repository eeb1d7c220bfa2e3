"""What a run settles before it reads anything: a changed Kommo catalog or destination config
re-plans the people it affects, and a newly connected destination's known opt-outs are loaded
and its feedback window started."""

from __future__ import annotations

from kommo_sync import window
from kommo_sync.destinations.base import Destination, SuppressionSource
from kommo_sync.memory import DestinationMemory
from kommo_sync.model import Catalog
from kommo_sync.plan import fingerprint
from kommo_sync.state import StateStore
from kommo_sync.tally import Tally


def connect(
    state: StateStore, destination: Destination, memory: DestinationMemory, now: int, tally: Tally
) -> None:
    """Once per destination: who already opted out there, so no run ever subscribes them.
    The feedback window starts at the same moment, in the same transaction, so whatever
    happens to this run, later opt-outs are read as feedback by the next one."""
    if memory.get("suppressions_loaded"):
        return
    emails = (
        list(destination.known_suppressions()) if isinstance(destination, SuppressionSource) else []
    )
    cursor = window.feedback(destination.name)
    with state.transaction():
        state.suppress((email, destination.name, now) for email in emails)
        if state.cursor(cursor) is None:
            state.set_cursor(cursor, now)
            state.set_cursor(cursor + window.START, now)
        state.set_meta(destination.name, "suppressions_loaded", True)
    tally.count(**{f"{destination.name}.suppressions_known": len(emails)})


def check_catalog(state: StateStore, catalog: Catalog, tally: Tally) -> None:
    """A pipeline whose statuses changed since the last run (renamed, added, removed)
    re-plans the contacts of its leads, so names and stages are repaired."""
    prints = {str(p.id): fingerprint(p) for p in catalog.pipelines.values()}
    before = state.meta("kommo", "catalog") or {}
    if prints == before:
        return
    pids = prints.keys() | before.keys()
    changed = {int(pid) for pid in pids if prints.get(pid) != before.get(pid)}
    with state.transaction():
        requeued = state.requeue_leads_of_pipelines(changed) if before else 0
        state.set_meta("kommo", "catalog", prints)
    tally.count(replanned_for_catalog_change=requeued)


def replan_on_new_settings(
    state: StateStore, destination: Destination, memory: DestinationMemory, tally: Tally
) -> None:
    """A config change (tag names, field mapping…) re-plans every mirrored person; a new
    target (another audience) also forgets what was pushed to the old one."""
    settings = {"settings": fingerprint(destination.settings()), "target": destination.target()}
    previous = memory.get("settings")
    if previous == settings:
        return
    with state.transaction():
        if previous and previous.get("target") != settings["target"]:
            state.forget_pushed(destination.name)
        requeued = state.mark_all_dirty() if previous else 0
        state.set_meta(destination.name, "settings", settings)
    tally.count(**{f"{destination.name}.replanned_for_new_settings": requeued})
