"""Wiring: config → Kommo client, the registered destinations, and the engine."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kommo_sync.batching import JobTimer
from kommo_sync.clock import Clock
from kommo_sync.config import Config, NetworkConfig
from kommo_sync.destinations import registry
from kommo_sync.destinations.base import Destination
from kommo_sync.destinations.registry import Wiring
from kommo_sync.engine import Engine
from kommo_sync.kommo import KommoClient, kommo_http
from kommo_sync.state import FileLock, LockHolder, State
from kommo_sync.tally import Progress

NEVER_ENDED = "ended without recording its end (killed, or stopped at once)"


def build_destinations(config: Config, clock: Clock) -> list[Destination]:
    """The configured destinations, in registry order."""
    wiring = Wiring(config.tags, clock, config.network.timeout_seconds, _job_timer(config.network))
    return [
        vendor.build(config.destinations[vendor.name], wiring)
        for vendor in registry.vendors()
        if vendor.name in config.destinations
    ]


def _job_timer(network: NetworkConfig) -> JobTimer:
    """When a destination's bulk jobs are first polled, and when one is given up."""
    return JobTimer(network.first_poll_seconds, network.job_limit_seconds)


def build_engine(
    config: Config, clock: Clock | None = None, progress: Progress | None = None
) -> Engine:
    clock = clock or Clock()
    kommo = KommoClient(kommo_http(config.kommo, clock, config.network.timeout_seconds))
    return Engine(config, kommo, build_destinations(config, clock), clock, progress)


def read_status(config: Config, limit: int = 10) -> dict[str, Any]:
    """What `status` shows; read inside a rolled-back transaction, so it changes nothing."""
    holder = FileLock.beside(config.state).holder()
    with State.open(config.state, dry_run=True) as state:
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
