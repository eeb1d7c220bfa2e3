"""Rendering of plans, run results and status: a rich table on a TTY, JSON for machines."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from kommo_sync.engine import RunResult

log = logging.getLogger("kommo_sync.progress")


class ProgressReporter:
    """Live progress: a rich status line on a TTY, a plain log line every `every` seconds for cron."""

    def __init__(self, console: Console, clock: Any, every: float = 30.0):
        self.console, self.clock, self.every = console, clock, every
        self.started = clock.monotonic()
        self.last_line = self.started
        self.status = console.status("starting…") if console.is_terminal else None
        if self.status:
            self.status.start()

    def __call__(self, stage: str, counts: Any) -> None:
        now = self.clock.monotonic()
        line = self.line(stage, counts, now - self.started)
        if self.status:
            self.status.update(line)
        elif now - self.last_line >= self.every:
            self.last_line = now
            log.info(line)

    @staticmethod
    def line(stage: str, counts: Any, elapsed: float) -> str:
        pulled = counts["pulled_contacts"] + counts["pulled_leads"]
        rate = pulled / elapsed if elapsed > 0 else 0.0
        return (f"{stage}: pulled {counts['pulled_contacts']} contacts, {counts['pulled_leads']} leads "
                f"({rate:.0f}/s); pushed {counts['pushed']}; rejected {counts['rejected']}")

    def close(self) -> None:
        if self.status:
            self.status.stop()


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in `text` by a mask (defence in depth: secrets never reach output)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def result_to_json(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id, "mode": result.mode, "dry_run": result.dry_run,
        "window": {"from": result.window[0], "to": result.window[1]},
        "counts": dict(sorted(result.counts.items())),
        "people": [asdict(row) for row in result.people],
        "operations": [{"destination": c.destination, "contact_id": c.person_id, "email": c.email,
                        "action": c.action, **c.summary} for c in result.changes],
        "rejections": result.rejections, "warnings": result.warnings,
        "notes": result.notes, "not_in_kommo": result.unmatched,
        "destinations": result.destinations,
    }


def render_json(console: Console, payload: dict[str, Any]) -> None:
    console.print_json(json.dumps(payload, default=str))


def render_result(console: Console, result: RunResult) -> None:
    title = "Plan (dry run: nothing was changed)" if result.dry_run else "Run"
    console.print(f"[bold]{title}[/bold] {result.mode}, window {when(result.window[0])} → {when(result.window[1])}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    for name, info in result.destinations.items():
        if info["status"] != "ok":
            console.print(f"[red]{name} set aside for this run:[/red] {info['reason']} "
                          "(its contacts stay queued for it; the other destinations went on)")
    if result.people:
        console.print(_people_table(result))
    if result.changes:
        console.print(_operations_table(result))
    if result.rejections:
        console.print(_rejections_table(result.rejections))
    if result.notes:
        console.print(_notes_table(result))
    if result.unmatched:
        console.print(f"Not found in Kommo ({len(result.unmatched)}): " + ", ".join(result.unmatched[:50]))
    console.print(_totals_table(result))


def _notes_table(result: RunResult) -> Table:
    title = "Notes to write (dry run: none written)" if result.dry_run else "Notes for Kommo"
    table = Table(title=title)
    for column in ("contact", "on", "text"):
        table.add_column(column)
    for note in result.notes:
        on = "contact" if note["entity"] == "contacts" else f"deal #{note['entity_id']}"
        table.add_row(str(note["contact_id"]), on, note["text"])
    return table


def _people_table(result: RunResult) -> Table:
    table = Table(title="Changed contacts", show_lines=False)
    for column in ("contact", "email", "stage", "tag", "deciding lead"):
        table.add_column(column)
    for row in result.people:
        deal = f"{row.deal} (#{row.deal_id})" if row.deal_id else "-"
        table.add_row(str(row.contact_id), row.email or "(no email)", row.stage, row.tag, deal)
    _note_cut(table, result.counts["people"], len(result.people))
    return table


def _operations_table(result: RunResult) -> Table:
    table = Table(title="Operations")
    for column in ("destination", "contact", "email", "operation", "details"):
        table.add_column(column)
    for change in result.changes:
        details = "; ".join(f"{k}: {_short(v)}" for k, v in change.summary.items() if v not in (None, [], {}, ""))
        table.add_row(change.destination, str(change.person_id), change.email or "-", change.action, details)
    return table


def _rejections_table(rejections: list[dict[str, Any]]) -> Table:
    table = Table(title="Rejected records")
    for column in ("destination", "contact", "email", "kind", "reason"):
        table.add_column(column)
    for row in rejections:
        table.add_row(row["destination"], str(row["contact_id"]), row.get("email") or "-", row["kind"], row["reason"])
    return table


def _totals_table(result: RunResult) -> Table:
    table = Table(title="Totals")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in sorted(result.counts.items()):
        table.add_row(key, str(value))
    return table


def render_status(console: Console, status: dict[str, Any]) -> None:
    runs = Table(title="Last runs")
    for column in ("id", "mode", "started", "finished", "status", "counts"):
        runs.add_column(column)
    for run in status["runs"]:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(run["counts"].items()) if "." not in k)
        runs.add_row(str(run["id"]), run["mode"], when(run["started_at"]), when(run["finished_at"]),
                     run["status"], counts)
    console.print(runs)
    cursors = Table(title="Cursors")
    cursors.add_column("cursor")
    cursors.add_column("value")
    for name, value in status["cursors"].items():
        cursors.add_row(name, when(value))
    console.print(cursors)
    console.print(f"Contacts waiting in the queue: {status['queued']}")
    notes = status.get("last_run_notes") or {}
    console.print("Notes of the last run: " + (", ".join(f"{k} {v}" for k, v in sorted(notes.items())) or "none"))
    for held in status.get("held_back", []):
        console.print(f"Held back for {held['destination']}: {held['count']} contacts since {when(held['since'])} "
                      "(transient: retried by every run)")
    if status["rejections"]:
        console.print(_rejections_table(status["rejections"]))
    else:
        console.print("No pending rejections.")


def _note_cut(table: Table, total: int, shown: int) -> None:
    if total > shown:
        table.caption = f"showing {shown} of {total}; use --json for machine output"


def _short(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple, set)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
