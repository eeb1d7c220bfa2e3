"""Rendering of plans, run results and status: rich tables on a terminal, a compact line-per-fact
report for cron, JSON for machines (versioned by schema/run-report.schema.json)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from rich.console import Console
from rich.table import Table

from kommo_sync.masking import scrub
from kommo_sync.results import RunResult

log = logging.getLogger("kommo_sync.progress")

SCHEMA_VERSION = 1
SCHEMA_FILE = "schema/run-report.schema.json"
# counts a JSON report always holds, zero or not (the schema requires them); others appear when
# not zero
KNOWN_COUNTS = (
    "pulled_leads",
    "pulled_contacts",
    "contacts_by_id",
    "pulled_companies",
    "pulled_events",
    "changed_leads",
    "changed_contacts",
    "people",
    "pushed",
    "rejected",
    "feedback_not_in_kommo",
    "notes_planned",
    "notes_written",
    "notes_rejected",
)
LISTINGS = {
    "people": "people",
    "operations": "changes",
    "rejections": "rejections",
    "notes": "notes",
}
HEADLINE = ("people", "pushed", "rejected")
ERROR_KINDS = {2: "config", 3: "locked", 4: "fatal", 130: "interrupted", 143: "interrupted"}
TERMINAL_REFRESH = 0.1


class ProgressReporter:
    """Live progress: a rich status line on a terminal; else a heartbeat log line every `every`
    seconds of the injected clock, in whatever phase the run is (the engine reports on every
    count)."""

    def __init__(self, console: Console, clock: Any, every: float = 30.0, live: bool | None = None):
        self.console, self.clock, self.every = console, clock, every
        self.started = clock.monotonic()
        self.last_line = self.started
        live = console.is_terminal if live is None else live
        self.status = console.status("starting…") if live else None
        if self.status:
            self.status.start()

    def __call__(self, stage: str, counts: Any) -> None:
        now = self.clock.monotonic()
        if now - self.last_line < (TERMINAL_REFRESH if self.status else self.every):
            return
        self.last_line = now
        line = self.line(stage, counts, now - self.started)
        if self.status:
            self.status.update(line)
        else:
            log.info(line, extra={"elapsed": round(now - self.started, 3), "counts": dict(counts)})

    @staticmethod
    def line(stage: str, counts: Any, elapsed: float) -> str:
        pulled = counts["pulled_contacts"] + counts["pulled_leads"]
        rate = pulled / elapsed if elapsed > 0 else 0.0
        line = (
            f"{stage}: pulled {counts['pulled_contacts']} contacts, {counts['pulled_leads']} leads "
            f"({rate:.0f}/s); pushed {counts['pushed']}; rejected {counts['rejected']}"
        )
        if counts["pulled_events"]:
            sent = sum(v for k, v in counts.items() if k.endswith(".events_sent"))
            line += f"; events read {counts['pulled_events']}, sent {sent}"
        if counts["notes_planned"]:
            line += f"; notes written {counts['notes_written']} of {counts['notes_planned']}"
        return line

    def close(self) -> None:
        if self.status:
            self.status.stop()


def when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(timestamp: float) -> str:
    """Unix seconds as ISO 8601 UTC with a Z: the one time format of the compact and JSON
    reports."""
    return datetime.fromtimestamp(int(timestamp), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# the compact report (no terminal: cron) ----------------------------------------------------------
def compact_report(result: RunResult, exit_code: int, show_emails: bool = False) -> list[str]:
    """A summary line, one line per destination, warning and rejection; each starts with the time
    and run id, so a log appended by many runs can be read and grepped line by line."""
    prefix = f"{iso(result.finished_at)} [run {result.run_id}] "
    rejections = [row for row in result.rejections if not _held_by_set_aside(row)]
    lines = [
        _summary(result, exit_code),
        *_destination_lines(result),
        *(f"warning: {warning}" for warning in result.warnings),
        *(_rejection_line(row, show_emails) for row in rejections),
        *_leftovers(result, show_emails),
    ]
    return [prefix + line for line in lines]


def _held_by_set_aside(row: dict[str, Any]) -> bool:
    """A contact held back only because its destination was set aside: its line says so once."""
    return row["reason"].startswith(f"held back: {row['destination']} was set aside")


def _summary(result: RunResult, exit_code: int) -> str:
    mode = result.mode + (" (dry run)" if result.dry_run else "")
    counts = {key: value for key, value in result.counts.items() if "." not in key}
    keys = [*HEADLINE, *sorted(set(counts) - set(HEADLINE))]
    figures = " ".join(f"{key}={counts.get(key, 0)}" for key in keys)
    return (
        f"{mode} finished in {result.finished_at - result.started_at} s, exit {exit_code}, "
        f"window {iso(result.window[0])}/{iso(result.window[1])}: {figures}"
    )


def _destination_lines(result: RunResult) -> Iterator[str]:
    for name, info in result.destinations.items():
        if info["status"] != "ok":
            held = sum(
                row["destination"] == name and _held_by_set_aside(row) for row in result.rejections
            )
            yield (
                f"{name}: set aside ({info.get('cause', 'failure')}), {held} contacts held back, "
                f"queued for it: {info['reason']}"
            )
            continue
        counts = sorted(
            (key[len(name) + 1 :], value)
            for key, value in result.counts.items()
            if key.startswith(name + ".")
        )
        yield f"{name}: ok" + (
            ", " + " ".join(f"{key}={value}" for key, value in counts) if counts else ""
        )


def _rejection_line(row: dict[str, Any], show_emails: bool) -> str:
    """Names the contact by id; the email (also inside the vendor's reason) only when asked."""
    email, reason = row.get("email"), row["reason"]
    if email and not show_emails:
        reason = re.sub(re.escape(email), "[email]", reason, flags=re.IGNORECASE)
    who = f"contact {row['contact_id']}" + (f" {email}" if email and show_emails else "")
    return f"rejected: {row['destination']} {who} ({row['kind']}): {reason}"


def _leftovers(result: RunResult, show_emails: bool) -> Iterator[str]:
    shown, total = len(result.rejections), result.totals["rejections"]
    if total > shown:
        yield (
            f"rejections: {shown} of {total} listed here; "
            "`kommo-sync status` shows the pending ones"
        )
    if result.unmatched:
        emails = ": " + ", ".join(result.unmatched) if show_emails else ""
        yield f"not found in Kommo: {len(result.unmatched)} people with feedback{emails}"


# JSON (--json), versioned by the schema shipped with the package ---------------------------------
def run_report_schema() -> dict[str, Any]:
    return json.loads(
        resources.files("kommo_sync").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    )


def result_to_json(result: RunResult, exit_code: int) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "account": result.account,
        "run_id": result.run_id,
        "mode": result.mode,
        "dry_run": result.dry_run,
        "exit_code": exit_code,
        "error": None,
        "started_at": iso(result.started_at),
        "finished_at": iso(result.finished_at),
        "duration_seconds": result.finished_at - result.started_at,
        "window": {"from": iso(result.window[0]), "to": iso(result.window[1])},
        "counts": dict(sorted({**dict.fromkeys(KNOWN_COUNTS, 0), **result.counts}.items())),
        "destinations": result.destinations,
        "people": [asdict(row) for row in result.people],
        "operations": [
            {
                "destination": c.destination,
                "contact_id": c.person_id,
                "email": c.email,
                "action": c.action,
                **c.summary,
            }
            for c in result.changes
        ],
        "rejections": result.rejections,
        "notes": result.notes,
        "not_in_kommo": result.unmatched,
        "warnings": result.warnings,
        "truncated": _truncated(result),
    }


def scrubbed_json(result: RunResult, exit_code: int, secrets: tuple[str, ...]) -> dict[str, Any]:
    """The JSON report with every secret masked: what `--json` prints and `sync()` returns."""
    text = scrub(json.dumps(result_to_json(result, exit_code), default=str), secrets)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _truncated(result: RunResult) -> dict[str, dict[str, int]]:
    """The listings capped at DETAIL_LIMIT rows, each with how many it shows of how many."""
    shown = {name: len(getattr(result, attr)) for name, attr in LISTINGS.items()}
    return {
        name: {"shown": shown[name], "total": result.totals[attr]}
        for name, attr in LISTINGS.items()
        if result.totals[attr] > shown[name]
    }


def error_to_json(exit_code: int, message: str, account: str | None = None) -> dict[str, Any]:
    """What --json prints when a command fails: the exit code and the one-line message, with the
    account when its config was read."""
    kind = ERROR_KINDS.get(exit_code, "fatal")
    return {
        "schema_version": SCHEMA_VERSION,
        **({"account": account} if account else {}),
        "exit_code": exit_code,
        "error": {"exit_code": exit_code, "kind": kind, "message": message},
    }


def render_result(console: Console, result: RunResult) -> None:
    title = "Plan (dry run: nothing was changed)" if result.dry_run else "Run"
    window = f"{when(result.window[0])} → {when(result.window[1])}"
    console.print(f"[bold]{title}[/bold] {result.mode}, window {window}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    for name, info in result.destinations.items():
        if info["status"] != "ok":
            console.print(
                f"[red]{name} set aside for this run:[/red] {info['reason']} "
                "(its contacts stay queued for it; the other destinations went on)"
            )
    if result.people:
        console.print(_people_table(result))
    if result.changes:
        console.print(_operations_table(result))
    if result.rejections:
        console.print(_rejections_table(result.rejections))
    if result.notes:
        console.print(_notes_table(result))
    if result.unmatched:
        console.print(
            f"Not found in Kommo ({len(result.unmatched)}): " + ", ".join(result.unmatched[:50])
        )
    console.print(_totals_table(result))


def _notes_table(result: RunResult) -> Table:
    title = "Notes to write (dry run: none written)" if result.dry_run else "Notes for Kommo"
    table = _table(title, ("contact", "on", "text"))
    for note in result.notes:
        on = "contact" if note["entity"] == "contacts" else f"deal #{note['entity_id']}"
        table.add_row(str(note["contact_id"]), on, note["text"])
    return table


def _people_table(result: RunResult) -> Table:
    table = _table("Changed contacts", ("contact", "email", "stage", "tag", "deciding lead"))
    for row in result.people:
        deal = f"{row.deal} (#{row.deal_id})" if row.deal_id else "-"
        table.add_row(str(row.contact_id), row.email or "(no email)", row.stage, row.tag, deal)
    _note_cut(table, result.counts["people"], len(result.people))
    return table


def _operations_table(result: RunResult) -> Table:
    table = _table("Operations", ("destination", "contact", "email", "operation", "details"))
    for change in result.changes:
        details = "; ".join(
            f"{k}: {_short(v)}" for k, v in change.summary.items() if v not in (None, [], {}, "")
        )
        table.add_row(
            change.destination, str(change.person_id), change.email or "-", change.action, details
        )
    return table


def _rejections_table(rejections: list[dict[str, Any]]) -> Table:
    table = _table("Rejected records", ("destination", "contact", "email", "kind", "reason"))
    for row in rejections:
        table.add_row(
            row["destination"],
            str(row["contact_id"]),
            row.get("email") or "-",
            row["kind"],
            row["reason"],
        )
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
    for column in ("id", "mode", "started", "finished", "status", "exit", "counts"):
        runs.add_column(column)
    for run in status["runs"]:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(run["counts"].items()) if "." not in k)
        exit_code = "-" if run["exit_code"] is None else str(run["exit_code"])
        runs.add_row(
            str(run["id"]),
            run["mode"],
            when(run["started_at"]),
            when(run["finished_at"]),
            run["status"],
            exit_code,
            counts,
        )
    console.print(runs)
    for run in status["runs"]:
        if run["error"]:
            console.print(
                f"Run {run['id']} ({run['status']}): {run['error']}", markup=False, highlight=False
            )
    cursors = Table(title="Cursors")
    cursors.add_column("cursor")
    cursors.add_column("value")
    for name, value in status["cursors"].items():
        cursors.add_row(name, when(value))
    console.print(cursors)
    console.print(f"Contacts waiting in the queue: {status['queued']}")
    notes = status.get("last_run_notes") or {}
    written = ", ".join(f"{k} {v}" for k, v in sorted(notes.items()))
    console.print("Notes of the last run: " + (written or "none"))
    for held in status.get("held_back", []):
        console.print(
            f"Held back for {held['destination']}: {held['count']} contacts "
            f"since {when(held['since'])} "
            "(transient: retried by every run)"
        )
    if status["rejections"]:
        console.print(_rejections_table(status["rejections"]))
    else:
        console.print("No pending rejections.")
    acknowledged = status.get("rejection_counts", {}).get("acknowledged", 0)
    if acknowledged:
        console.print(
            f"Acknowledged rejections: {acknowledged} (rejections --clear: not retried until "
            "the contact changes; listed by `kommo-sync rejections`)"
        )


def _table(title: str, columns: tuple[str, ...]) -> Table:
    """A table whose long cells wrap instead of being cut with an ellipsis (emails, reasons)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _note_cut(table: Table, total: int, shown: int) -> None:
    if total > shown:
        table.caption = f"showing {shown} of {total}; use --json for machine output"


def _short(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple, set)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
