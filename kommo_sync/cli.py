"""Click commands only: parse, call the engine, render, map errors to exit codes.

Exit codes: 0 done; 1 done but records were rejected; 2 config or usage error; 3 another run
holds the lock; 4 fatal (auth, unreachable API, repeated 429); 130 / 143 interrupted by SIGINT /
SIGTERM (the run stopped at a safe point; a second signal stops it at once); 5 `status --check`
found the last run failed or the last success too old.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from kommo_sync import __version__, freshness, report, setup
from kommo_sync.app import read_status
from kommo_sync.cli_common import (
    configure_logging,
    handle_errors,
    load,
    metrics_option,
    moment,
    output_options,
    shared_options,
)
from kommo_sync.cli_deploy import deploy
from kommo_sync.cli_reconcile import reconcile
from kommo_sync.cli_run import load_for_run, render_run, run_engine, run_monitored
from kommo_sync.clock import Clock
from kommo_sync.exits import EXIT_OK, EXIT_STALE
from kommo_sync.init_flags import init_options
from kommo_sync.masking import scrub
from kommo_sync.results import RunOptions


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@shared_options(before_subcommand=True)
@click.version_option(
    __version__, "--version", prog_name="kommo-sync", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep Mailchimp and Klaviyo in step with Kommo CRM."""
    ctx.ensure_object(dict).setdefault("verbose", False)


@cli.command()
@shared_options(before_subcommand=False)
@click.option("--dry-run", is_flag=True, help="Show what the run would change; change nothing.")
@click.option(
    "--full-resync",
    is_flag=True,
    help="Also re-push every mirrored person's desired state, ignoring fingerprints.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema: README).")
@click.option(
    "--accounts",
    multiple=True,
    metavar="PATH",
    help="Run many accounts, each in its own process: a folder of account folders (each with "
    "its sync.yaml) or a sync.yaml; repeatable. --config is then not read.",
)
@click.option(
    "--parallel",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="With --accounts: how many accounts run at a time.",
)
@output_options
@metrics_option
@click.pass_context
@handle_errors
def run(
    ctx: click.Context,
    dry_run: bool,
    full_resync: bool,
    as_json: bool,
    accounts: tuple[str, ...],
    parallel: int,
) -> int:
    """One incremental run: everything changed in Kommo since the last run (of each account,
    with --accounts)."""
    if accounts:
        from kommo_sync.cli_accounts import run_accounts

        return run_accounts(ctx, accounts, parallel, dry_run, full_resync, as_json)
    config = load_for_run(ctx, dry_run)
    return run_monitored(ctx, config, RunOptions(dry_run=dry_run, full_resync=full_resync), as_json)


@cli.command()
@shared_options(before_subcommand=False)
@click.option(
    "--since",
    required=True,
    callback=moment,
    help="Start of the range (ISO date; UTC unless an offset is given).",
)
@click.option("--until", callback=moment, help="End of the range (default: now).")
@click.option(
    "--dry-run", is_flag=True, help="Show what the backfill would change; change nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema: README).")
@output_options
@metrics_option
@click.pass_context
@handle_errors
def backfill(
    ctx: click.Context, since: int, until: int | None, dry_run: bool, as_json: bool
) -> int:
    """Re-sync a bounded range of Kommo history; the incremental cursor stays where it is."""
    if until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    if since > (ctx.obj.get("clock") or Clock()).now():
        raise click.BadParameter(
            "it is in the future: there is nothing to backfill yet", param_hint="--since"
        )
    config = load_for_run(ctx, dry_run)
    options = RunOptions(dry_run=dry_run, since=since, until=until)
    return run_monitored(ctx, config, options, as_json)


def _age(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """`--max-age` in seconds."""
    try:
        return None if value is None else freshness.parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@shared_options(before_subcommand=False)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--limit",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many runs to show, newest first.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Print one line instead: exit 0 if the last run succeeded (exit 0 or 1), else 5.",
)
@click.option(
    "--max-age",
    callback=_age,
    metavar="AGE",
    help="Implies --check: exit 0 if the last success (exit 0 or 1) ended within AGE (90m, 2h).",
)
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool, limit: int, check: bool, max_age: int | None) -> int:
    """Last runs (status, exit code, error), cursors, queued contacts and pending rejections."""
    config = load(ctx)
    if check or max_age is not None:
        now = (ctx.obj.get("clock") or Clock()).now()
        healthy, line = freshness.check(
            read_status(config, freshness.CHECK_RUNS)["runs"], now, max_age
        )
        click.echo(line, err=not healthy)
        return EXIT_OK if healthy else EXIT_STALE
    data = read_status(config, limit)
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        report.render_status(Console(soft_wrap=True), data)
    return EXIT_OK


def _filters(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--contact ID` and `--destination NAME`, shared by `rejections` and `retry`."""
    command = click.option(
        "--destination", help="Only this destination's rejections (mailchimp, klaviyo…)."
    )(command)
    return click.option("--contact", "contact_id", type=int, help="Only this Kommo contact id.")(
        command
    )


@cli.command()
@shared_options(before_subcommand=False)
@_filters
@click.option("--json", "as_json", is_flag=True, help="Print the rejections as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the rejections as CSV.")
@click.option(
    "--clear",
    is_flag=True,
    help="Acknowledge them: not retried until the contact changes, not counted in exit code 1.",
)
@click.pass_context
@handle_errors
def rejections(
    ctx: click.Context,
    contact_id: int | None,
    destination: str | None,
    as_json: bool,
    as_csv: bool,
    clear: bool,
) -> int:
    """Records a destination refused (kind, reason, first seen, run); --clear acknowledges them."""
    from kommo_sync import rejections as rejected

    config = load(ctx)
    if clear:
        now = (ctx.obj.get("clock") or Clock()).now()
        count = rejected.clear(config, now, contact_id, destination)
        click.echo(f"{count} rejections acknowledged: held until the contact changes")
        return EXIT_OK
    rows = rejected.listed(config, contact_id, destination)
    if as_json:
        click.echo(json.dumps({"rejections": rows}, default=str))
    elif as_csv:
        click.echo(rejected.to_csv(rows), nl=False)
    else:
        rejected.render(Console(soft_wrap=True), rows)
    return EXIT_OK


@cli.command()
@shared_options(before_subcommand=False)
@_filters
@click.option("--permanent", is_flag=True, help="Permanent rejections too, not only transient.")
@click.option("--dry-run", is_flag=True, help="Say who would be re-queued; change nothing.")
@click.option("--now", is_flag=True, help="Then run at once for them only (lock, feedback first).")
@click.option("--json", "as_json", is_flag=True, help="With --now: print the run as JSON.")
@output_options
@click.pass_context
@handle_errors
def retry(
    ctx: click.Context,
    contact_id: int | None,
    destination: str | None,
    permanent: bool,
    dry_run: bool,
    now: bool,
    as_json: bool,
) -> int:
    """Re-queue rejected people: the next run plans them again, though their data is unchanged
    (with --now, a run limited to them does, right away)."""
    from kommo_sync import rejections as rejected

    config = load(ctx)
    at = (ctx.obj.get("clock") or Clock()).now()
    rows = rejected.retry(config, at, permanent, dry_run, contact_id, destination)
    lines = rejected.retry_lines(rows, dry_run)
    if not now or dry_run or not rows:
        click.echo("\n".join(lines + (["--now: nothing to run"] if now and not rows else [])))
        return EXIT_OK
    if not as_json:
        click.echo("\n".join(lines))
    only = frozenset(row["contact_id"] for row in rows)
    return render_run(ctx, run_engine(ctx, config, RunOptions(only=only)), as_json, config.secrets)


@cli.command()
@click.option(
    "--contacts",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="How many contacts to seed.",
)
@click.pass_context
@handle_errors
def demo(ctx: click.Context, contacts: int) -> int:
    """Start local sandboxes with realistic data, run a sync against them, print the report."""
    from kommo_sync.demo import run_demo

    return run_demo(Console(soft_wrap=True), contacts)


@cli.command()
@shared_options(before_subcommand=False)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
@handle_errors
def check(ctx: click.Context, as_json: bool) -> int:
    """Check the config and the accounts without writing anything: credentials, scopes,
    audience, lists, pipelines, fields, merge fields (exit 0 all pass; 2 a key is wrong; 4 a
    vendor refuses)."""
    from kommo_sync import checks

    found = checks.run_all(
        lambda: load(ctx), ctx.obj["config_path"], ctx.obj.get("clock") or Clock()
    )
    lines = (
        [json.dumps(checks.to_json(found))]
        if as_json
        else [c.line() for c in found] + [checks.summary(found)]
    )
    click.echo(scrub("\n".join(lines), ctx.obj.get("secrets", ())))
    return checks.exit_code(found)


@cli.command()
@shared_options(before_subcommand=False)
@click.argument("who", metavar="EMAIL|CONTACT_ID")
@click.option("--dry-run", is_flag=True, help="Show what would be erased; change nothing.")
@click.option("--yes", is_flag=True, help="Erase without asking (needed without a terminal).")
@click.option("--undo", is_flag=True, help="Lift an email's do-not-sync marker.")
@click.pass_context
@handle_errors
def forget(ctx: click.Context, who: str, dry_run: bool, yes: bool, undo: bool) -> int:
    """Erase a person for good (GDPR/CCPA): Mailchimp member, Klaviyo profiles, every state row;
    later runs skip them while Kommo holds the contact (Kommo is not changed)."""
    from kommo_sync.app import forget_person, unforget_person

    config, clock = load(ctx), ctx.obj.get("clock") or Clock()
    if undo:
        if who.strip().isdigit():
            raise click.BadParameter("--undo takes the email that was forgotten", param_hint="WHO")
        click.echo("\n".join(unforget_person(config, clock, who, dry_run)))
        return EXIT_OK

    def confirm(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise click.UsageError("forget erases for good: confirm with --yes (no terminal)")
        return click.confirm(question)

    lines, code = forget_person(config, clock, who, dry_run, confirm)
    click.echo(scrub("\n".join(lines), config.secrets))
    return code


@cli.command()
@init_options
@click.pass_context
@handle_errors
def init(ctx: click.Context, **answers: Any) -> int:
    """Write a commented sync.yaml and an env file (mode 0600) from answers asked or given as
    flags, picking pipelines, fields, the audience and the list from the accounts; never
    overwrites a file."""
    from kommo_sync.checklist import Failed

    given = setup.answers(answers)
    ctx.obj["secrets"] = given.secrets
    configure_logging(ctx.obj["verbose"], given.secrets)
    try:
        return setup.run_init(given, ctx.obj.get("clock") or Clock(), click.echo)
    except Failed as failed:
        click.echo(scrub(f"{failed.check.key}: {failed.check.message}", given.secrets), err=True)
        return failed.check.exit_code


@cli.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write sync.yaml and the env file (default: a new temporary folder).",
)
@click.option(
    "--contacts",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="How many Kommo contacts to seed.",
)
@click.pass_context
@handle_errors
def sandbox(ctx: click.Context, folder: Path | None, contacts: int) -> int:
    """Serve seeded Kommo, Mailchimp and Klaviyo sandboxes on loopback until stopped, with a ready
    sync.yaml and env file, to try every command without accounts."""
    from kommo_sync.sandbox.serve import serve

    return serve(folder, contacts, click.echo)


cli.add_command(reconcile)
cli.add_command(deploy)


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
