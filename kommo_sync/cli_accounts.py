"""`run --accounts`: find the accounts, run them (runner.py), render one row or JSON object
each and a summary, and exit with the set's code (accounts.set_exit_code)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from kommo_sync import report
from kommo_sync.accounts import find_accounts, set_exit_code, status_of
from kommo_sync.clock import Clock
from kommo_sync.exits import EXIT_OK
from kommo_sync.runner import Outcome, Runner
from kommo_sync.signals import stop_on_signals


def run_accounts(
    ctx: click.Context,
    paths: Sequence[str],
    parallel: int,
    dry_run: bool,
    full_resync: bool,
    as_json: bool,
) -> int:
    accounts = find_accounts(paths)
    clock = ctx.obj.get("clock") or Clock()
    log_format = ctx.obj.get("log_format", "text")
    runner = Runner(
        _child_args(ctx.obj, dry_run, full_resync),
        parallel,
        lambda line: click.echo(line, err=True),
        clock,
        label_lines=log_format != "json",  # JSON log lines carry their account already
        metrics_file=ctx.obj.get("metrics_file"),
    )
    with stop_on_signals(clock.stop, runner.forward):
        outcomes = runner.run(accounts)
    signum = clock.stop.signum
    code = 128 + signum if signum else set_exit_code(o.exit_code for o in outcomes)
    if as_json:
        for outcome in outcomes:
            click.echo(json.dumps(_document(outcome)))
        click.echo(json.dumps({"summary": _summary(outcomes, code)}))
    elif not (ctx.obj.get("quiet") and code == EXIT_OK):
        render(Console(soft_wrap=True), outcomes, code)
    return code


def _child_args(options: dict[str, Any], dry_run: bool, full_resync: bool) -> list[str]:
    """The runner's own options, passed on to each account's `run`."""
    flags = {
        "--dry-run": dry_run,
        "--full-resync": full_resync,
        "-v": options.get("verbose", False),
        "--quiet": options.get("quiet", False),
    }
    args = [flag for flag, given in flags.items() if given]
    args += ["--log-format", options.get("log_format", "text")]
    return args + ["--heartbeat", str(options.get("heartbeat", 30.0))]


def _document(outcome: Outcome) -> dict[str, Any]:
    """The account's own `--json` document, with its account; an error object when it printed
    none (it crashed or was killed)."""
    if outcome.document is not None:
        return {"account": outcome.label, **outcome.document}
    why = "not started: the runner was stopped" if not outcome.started else "printed no report"
    message = f"{outcome.account.config}: {why} (exit {outcome.exit_code})"
    return report.error_to_json(outcome.exit_code, message, outcome.label)


def _summary(outcomes: Sequence[Outcome], code: int) -> dict[str, Any]:
    return {
        "exit_code": code,
        "accounts": [
            {
                "account": o.label,
                "config": str(o.account.config),
                "exit_code": o.exit_code,
                "status": _status(o),
                "duration_seconds": round(o.seconds, 1),
            }
            for o in outcomes
        ],
    }


def _status(outcome: Outcome) -> str:
    return status_of(outcome.exit_code) if outcome.started else "not started"


def render(console: Console, outcomes: Sequence[Outcome], code: int) -> None:
    """One row an account, then each failed account's one-line reason."""
    table = Table(title=f"Accounts (exit {code})")
    for column in ("account", "exit", "status", "pulled", "pushed", "rejections", "seconds"):
        table.add_column(column, justify="left" if column in ("account", "status") else "right")
    for o in outcomes:
        counts = (o.document or {}).get("counts") or {}
        figures = [str(counts[k]) if k in counts else "-" for k in ("pulled_contacts", "pushed")]
        rejected = str(counts["rejected"]) if "rejected" in counts else "-"
        table.add_row(o.label, str(o.exit_code), _status(o), *figures, rejected, f"{o.seconds:.1f}")
    console.print(table)
    for o in outcomes:
        error = (o.document or {}).get("error")
        if error:
            console.print(f"{o.label}: {error['message']}", markup=False, highlight=False)
