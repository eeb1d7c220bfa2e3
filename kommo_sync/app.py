"""Wiring: config → Kommo client, the registered destinations, and the engine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from kommo_sync import forget
from kommo_sync.clock import Clock
from kommo_sync.config import Config
from kommo_sync.destinations import registry
from kommo_sync.destinations.base import Destination
from kommo_sync.destinations.registry import Wiring
from kommo_sync.engine import Engine
from kommo_sync.kommo import KommoClient, kommo_http
from kommo_sync.state import LockHolder, State, StateLocation, open_state, run_lock
from kommo_sync.tally import Progress

log = logging.getLogger(__name__)
T = TypeVar("T")
NEVER_ENDED = "ended without recording its end (killed, or stopped at once)"


def build_destinations(config: Config, clock: Clock) -> list[Destination]:
    """The configured destinations, in registry order."""
    network = config.network
    wiring = Wiring(
        config.tags, clock, network.timeout_seconds, network.first_poll_seconds,
        network.job_limit_seconds,
    )  # fmt: skip
    return [
        vendor.build(config.destinations[vendor.name], wiring)
        for vendor in registry.vendors()
        if vendor.name in config.destinations
    ]


def build_engine(
    config: Config, clock: Clock | None = None, progress: Progress | None = None
) -> Engine:
    clock = clock or Clock()
    kommo = KommoClient(kommo_http(config.kommo, clock, config.network.timeout_seconds))
    return Engine(config, kommo, build_destinations(config, clock), clock, progress)


def peek_state(location: StateLocation | None, query: Callable[[State], T]) -> T | None:
    """A query on the state, read-only, for what runs beside a run (alerts, metrics) and must
    never fail it: None without a state (a config that did not load) or when it cannot be read
    (the run itself reports why)."""
    if location is None:
        return None
    try:
        with location.open(dry_run=True) as state:
            return query(state)
    except Exception:  # noqa: BLE001 - a monitoring aid never fails the run
        log.debug("the state could not be read", exc_info=True)
        return None


def read_status(config: Config, limit: int = 10) -> dict[str, Any]:
    """What `status` shows; read inside a rolled-back transaction, so it changes nothing."""
    holder = run_lock(config).holder()
    with open_state(config, dry_run=True) as state:
        runs = [
            _as_seen(run, holder if n == 0 else None)
            for n, run in enumerate(state.last_runs(limit))
        ]
        return {
            "runs": runs,
            "cursors": state.cursors(),
            "queued": state.dirty_count(),
            "rejections": state.pending_rejections(),
            "rejection_counts": state.rejection_counts(),
            "held_back": state.held_back(),
            "last_run_notes": state.note_counts(runs[0]["id"]) if runs else {},
            "events": state.event_counts(),
        }


def _as_seen(run: dict[str, Any], holder: LockHolder | None) -> dict[str, Any]:
    """A `running` row is live only while its run holds the lock (`holder`: given for the newest
    row only); any other ended without recording its end (killed, a second signal)."""
    if run["status"] != "running":
        return run
    if holder is not None:
        return {**run, "holder": asdict(holder)}
    return {**run, "status": "interrupted", "error": run["error"] or NEVER_ENDED}


def forget_person(
    config: Config, clock: Clock, who: str, dry_run: bool, confirm: Callable[[str], bool]
) -> tuple[list[str], int]:
    """`forget`: under the run lock, erase a person at every destination that can and in the
    state (see kommo_sync.forget); `confirm` is asked before anything is erased."""
    key = forget.require_key(config.forget_key)
    lock = run_lock(config)
    lock.acquire(clock.now())
    try:
        with open_state(config, dry_run=dry_run) as state:
            target = forget.find_target(state, who)
            if not target.emails:
                return [f"contact {who} is not in the state's mirror: forget it by email"], 2
            erasers = forget.erasers(build_destinations(config, clock))
            if dry_run:
                return forget.preview(state, erasers, target).lines, 0
            if not confirm(forget.describe(target, erasers)):
                return ["nothing was erased"], 0
            done = forget.forget(state, erasers, key, target, int(clock.now()))
            return done.lines, 0 if done.complete else 4
    finally:
        lock.release()


def unforget_person(config: Config, clock: Clock, email: str, dry_run: bool) -> list[str]:
    """`forget --undo`: lift an email's do-not-sync marker, under the run lock."""
    key = forget.require_key(config.forget_key)
    lock = run_lock(config)
    lock.acquire(clock.now())
    try:
        with open_state(config, dry_run=dry_run) as state:
            lifted = forget.undo(state, key, email, int(clock.now()))
    finally:
        lock.release()
    if not lifted:
        return ["that email was not forgotten: nothing to undo"]
    return [
        "the do-not-sync marker is lifted" + (" (dry run: nothing was changed)" if dry_run else ""),
        "the person is synced again when their Kommo contact next changes "
        "(or with `backfill --since`); Mailchimp refuses an address erased there until the "
        "person subscribes again through a Mailchimp form",
    ]
