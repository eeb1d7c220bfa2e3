"""`rejections`, `rejections --clear` and `retry`: the records a destination refused, read,
acknowledged or re-queued for the next run.

Reading happens inside a rolled-back transaction (like `status`); the writes take the run's lock,
so they never race a run (another run holding it: exit 3). A dry `retry` does the same writes in
a transaction that is rolled back, so it shows exactly who would be re-queued.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from kommo_sync.clock import iso_utc
from kommo_sync.config import Config
from kommo_sync.state import open_state, run_lock
from kommo_sync.state.sqlite_rejections import REJECTION_KEYS


def listed(
    config: Config, contact_id: int | None = None, destination: str | None = None
) -> list[dict[str, Any]]:
    """Every recorded rejection, acknowledged ones too; changes nothing."""
    with open_state(config, dry_run=True) as state:
        return state.rejection_list(contact_id, destination)


@contextmanager
def _locked(config: Config, now: float) -> Iterator[None]:
    """The run's lock around a write: a running run makes it exit 3 (LockedError)."""
    lock = run_lock(config)
    lock.acquire(now)
    try:
        yield
    finally:
        lock.release()


def clear(
    config: Config, now: float, contact_id: int | None = None, destination: str | None = None
) -> int:
    """Acknowledge rejections: held until the contact's data changes, no longer counted."""
    with _locked(config, now), open_state(config) as state, state.transaction():
        return state.acknowledge_rejections(int(now), contact_id, destination)


def retry(
    config: Config,
    now: float,
    permanent: bool,
    dry_run: bool,
    contact_id: int | None = None,
    destination: str | None = None,
) -> list[dict[str, Any]]:
    """Re-queue rejected people for the next run (a dry run rolls the same writes back)."""
    if dry_run:
        with open_state(config, dry_run=True) as state:
            return state.queue_retries(permanent, contact_id, destination)
    with _locked(config, now), open_state(config) as state, state.transaction():
        return state.queue_retries(permanent, contact_id, destination)


def _cell(key: str, value: Any) -> str:
    """One value as the table and the CSV show it: times in UTC ISO, none as empty."""
    if value is None:
        return ""
    if key in ("first_seen", "acknowledged_at"):
        return iso_utc(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rejections as CSV, one header line then one line a rejection."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REJECTION_KEYS)
    writer.writerows([_cell(key, row[key]) for key in REJECTION_KEYS] for row in rows)
    return out.getvalue()


def render(console: Console, rows: list[dict[str, Any]]) -> None:
    """A table of the rejections; acknowledged ones are marked, as are re-queued ones."""
    if not rows:
        console.print("No rejections recorded.")
        return
    table = Table(title="Rejections")
    for column in ("destination", "contact", "email", "kind", "reason", "first seen", "run"):
        table.add_column(column, no_wrap=column in ("contact", "email", "kind"))
    for row in rows:
        kind = row["kind"] + _mark(row)
        table.add_row(
            row["destination"],
            str(row["contact_id"]),
            row["email"] or "",
            kind,
            row["reason"],
            _cell("first_seen", row["first_seen"]),
            _cell("run_id", row["run_id"]),
        )
    console.print(table)


def _mark(row: dict[str, Any]) -> str:
    if row["acknowledged_at"] is not None:
        return " (acknowledged)"
    return " (re-queued)" if row["retry_queued"] else ""


def retry_lines(rows: list[dict[str, Any]], dry_run: bool) -> list[str]:
    """What `retry` says: who is (or would be) re-queued for the next run."""
    verb = "would be re-queued" if dry_run else "re-queued for the next run"
    lines = [f"{r['destination']}: contact {r['contact_id']} ({r['kind']}) {verb}" for r in rows]
    return [*lines, f"{len(rows)} {verb}" + (" (dry run: nothing changed)" if dry_run else "")]
