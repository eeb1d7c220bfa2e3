"""`kommo-sync reconcile`: read what the destinations hold for the people this tool manages,
show the drift and repair it through a normal run. The estimated cost in requests is printed
first (above CONFIRM_ABOVE it needs --yes, or a yes on a terminal), the actual cost after."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from kommo_sync import report
from kommo_sync.app import build_destinations
from kommo_sync.cli_common import handle_errors, load, output_options, shared_options
from kommo_sync.cli_run import render_run, run_engine
from kommo_sync.clock import Clock
from kommo_sync.config import Config
from kommo_sync.destinations.base import Destination
from kommo_sync.exits import EXIT_OK
from kommo_sync.masking import scrub
from kommo_sync.reconcile import CONFIRM_ABOVE, chosen, estimate
from kommo_sync.results import RunOptions, RunResult
from kommo_sync.state import open_state

DRIFT_ROWS = 50  # rows of the drift table; --json lists them all (up to DETAIL_LIMIT)


@click.command()
@shared_options(before_subcommand=False)
@click.option("--dry-run", is_flag=True, help="Show the drift and the repairs; change nothing.")
@click.option(
    "--destination", "only", metavar="NAME", help="Reconcile only this destination (mailchimp…)."
)
@click.option(
    "--yes", is_flag=True, help=f"Go ahead when the estimate is above {CONFIRM_ABOVE:,} requests."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run and its drift as JSON.")
@click.option("--kommo", is_flag=True, help="Also check every mirrored contact against Kommo.")
@output_options
@click.pass_context
@handle_errors
def reconcile(
    ctx: click.Context, dry_run: bool, only: str | None, yes: bool, as_json: bool, kommo: bool
) -> int:
    """Repair drift: members and profiles changed by hand (archived, untagged, edited, out of a
    list) are put back as the last push left them; opt-outs found become suppressions."""
    config = load(ctx)
    destinations = build_destinations(config, ctx.obj.get("clock") or Clock())
    names = _names(destinations, only)
    costs = _estimate(config, destinations, names)
    click.echo(f"estimated cost: {_cost_text(costs)}", err=True)
    if sum(costs.values()) > CONFIRM_ABOVE and not yes:
        _confirm(sum(costs.values()))
    options = RunOptions(dry_run=dry_run, reconcile=names, reconcile_kommo=kommo)
    result = run_engine(ctx, config, options)
    if as_json:
        return _print_json(result, costs, config.secrets)
    code = render_run(ctx, result, False, config.secrets)
    if not (ctx.obj.get("quiet") and code == EXIT_OK):
        _print_drift(result, config.secrets)
    return code


def _names(destinations: list[Destination], only: str | None) -> tuple[str, ...]:
    names = chosen(destinations, only)
    if only is not None and not names:
        known = ", ".join(chosen(destinations, None)) or "none"
        raise click.BadParameter(
            f"{only!r} is not a configured destination that can be reconciled ({known})",
            param_hint="--destination",
        )
    return names


def _estimate(
    config: Config, destinations: list[Destination], names: tuple[str, ...]
) -> dict[str, int]:
    """Read in a rolled-back transaction, before the run takes the lock: changes nothing."""
    with open_state(config, dry_run=True) as state:
        return estimate(state, destinations, names)


def _cost_text(costs: dict[str, int]) -> str:
    parts = ", ".join(f"{name} {count:,}" for name, count in costs.items())
    return f"{sum(costs.values()):,} requests" + (f" ({parts})" if parts else "")


def _confirm(total: int) -> None:
    """Above the threshold: a yes on a terminal, else --yes (exit 2 without either)."""
    question = f"reconcile reads about {total:,} requests from the vendors; go ahead?"
    if not sys.stdin.isatty():
        raise click.UsageError(
            f"the estimate ({total:,} requests) is above {CONFIRM_ABOVE:,}: "
            "confirm with --yes (no terminal)"
        )
    if not click.confirm(question):
        raise click.Abort()


def cost_json(result: RunResult, costs: dict[str, int]) -> dict[str, Any]:
    """The estimate and the requests the reads made, in total and by destination."""
    counts = result.counts
    return {
        "estimated_requests": sum(costs.values()),
        "requests": counts["reconcile.requests"],
        "by_destination": {
            name: {"estimated": cost, "requests": counts[f"{name}.reconcile.requests"]}
            for name, cost in costs.items()
        },
        "drift_total": result.totals["drift"],
    }


def _print_json(result: RunResult, costs: dict[str, int], secrets: tuple[str, ...]) -> int:
    code = result.exit_code
    body = {
        **report.result_to_json(result, code),
        "drift": result.drift,
        "reconcile": cost_json(result, costs),
    }
    click.echo(scrub(json.dumps(body, default=str), secrets))
    return code


def _print_drift(result: RunResult, secrets: tuple[str, ...]) -> None:
    console = Console(soft_wrap=True)
    if result.drift:
        console.print(drift_table(result.drift, result.totals["drift"]))
    else:
        console.print("No drift found.")
    cost = result.counts["reconcile.requests"]
    console.print(scrub(f"actual cost: {cost:,} requests", secrets))


def drift_table(rows: list[dict[str, Any]], total: int) -> Table:
    """At most DRIFT_ROWS rows; the caption says how many are left out."""
    table = Table(title="Drift")
    for column in ("destination", "contact", "email", "kind", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows[:DRIFT_ROWS]:
        table.add_row(
            row["destination"],
            str(row["contact_id"]),
            row["email"] or "",
            row["kind"],
            row["detail"],
        )
    shown = min(len(rows), DRIFT_ROWS)
    if total > shown:
        table.caption = f"showing {shown} of {total}; use --json for machine output"
    return table
