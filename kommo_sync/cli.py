"""Click commands only: parse, call the engine, render, map errors to exit codes.

Exit codes: 0 done; 1 done but records were rejected; 2 config or usage error; 3 another run
holds the lock; 4 fatal (auth, unreachable API, repeated 429); 130 / 143 interrupted by SIGINT /
SIGTERM (the run stopped at a safe point; a second signal stops it at once).
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from kommo_sync import __version__, logs, report
from kommo_sync.app import build_engine, read_status
from kommo_sync.clock import Clock
from kommo_sync.config import Config, load_config, parse_moment
from kommo_sync.errors import (
    ConfigError,
    FatalError,
    Interrupted,
    LockedError,
    RecordRejected,
    RetryLater,
)
from kommo_sync.exits import EXIT_CONFIG, EXIT_FATAL, EXIT_LOCKED, EXIT_OK
from kommo_sync.masking import scrub
from kommo_sync.results import RunOptions, RunResult
from kommo_sync.signals import stop_on_signals


class ScrubbingFilter(logging.Filter):
    """Masks secrets in every log record, whatever library wrote it."""

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage(), self.secrets)
        record.args = ()
        return True


def _configure_logging(
    verbose: bool, secrets: tuple[str, ...], log_format: str = "text", quiet: bool = False
) -> None:
    """Log records on stderr, each with its run id and phase; the heartbeat too unless --quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logs.formatter(log_format))
    handler.addFilter(ScrubbingFilter(secrets))
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("kommo_sync.progress").setLevel(logging.WARNING if quiet else logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def handle_errors(command: Callable[..., int]) -> Callable[..., None]:
    """Turn our error kinds into messages (secrets masked) and exit codes."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        secrets = ctx.obj.get("secrets", ()) if ctx.obj else ()
        try:
            code = command(*args, **kwargs)
        except ConfigError as exc:
            code = _fail(f"config error: {exc}", EXIT_CONFIG, secrets)
        except LockedError as exc:
            code = _fail(str(exc), EXIT_LOCKED, secrets)
        except (FatalError, RetryLater, RecordRejected) as exc:
            code = _fail(f"run stopped: {exc}", EXIT_FATAL, secrets)
        except Interrupted as exc:
            code = _fail(
                f"run {exc}: what was recorded stays recorded; the next run continues",
                exc.exit_code,
                secrets,
            )
        except KeyboardInterrupt:
            code = _fail("interrupted by SIGINT", Interrupted(signal.SIGINT).exit_code, secrets)
        ctx.exit(code)

    return wrapper


def _fail(message: str, code: int, secrets: tuple[str, ...]) -> int:
    """One line on stderr (a JSON log record with --log-format json); with --json, an error
    object."""
    ctx = click.get_current_context()
    message = scrub(message, secrets)
    as_log = (ctx.obj or {}).get("log_format") == "json"
    click.echo(
        logs.json_line(logging.ERROR, "kommo_sync.cli", message) if as_log else message, err=True
    )
    if ctx.params.get("as_json"):
        click.echo(json.dumps(report.error_to_json(code, message)))
    return code


def _config(ctx: click.Context) -> Config:
    logs.reset()
    config = load_config(ctx.obj["config_path"], env_file=ctx.obj.get("env_file"))
    ctx.obj["secrets"] = config.secrets
    _configure_logging(
        ctx.obj["verbose"],
        config.secrets,
        ctx.obj.get("log_format", "text"),
        ctx.obj.get("quiet", False),
    )
    for warning in config.warnings:
        click.echo(warning, err=True)
    return config


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(parse_moment(value).timestamp())
    except ValueError:
        raise click.BadParameter(f"not an ISO date or datetime: {value!r}") from None


def _keep(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep a shared option given before or after the subcommand (after wins)."""
    if value is not None and value is not False:
        ctx.ensure_object(dict)[param.name or ""] = value


def shared_options(before_subcommand: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--config, --env-file and -v, accepted before and after the subcommand."""
    top = before_subcommand
    options = [
        click.option(
            "--config",
            "config_path",
            default="./sync.yaml" if top else None,
            envvar="KOMMO_SYNC_CONFIG" if top else None,
            show_default=top,
            expose_value=False,
            callback=_keep,
            help="Path of sync.yaml (also read from KOMMO_SYNC_CONFIG).",
        ),
        click.option(
            "--env-file",
            type=click.Path(dir_okay=False),
            expose_value=False,
            callback=_keep,
            help="KEY=value file for ${VAR} secrets not in the environment or a VAR_FILE.",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            expose_value=False,
            callback=_keep,
            help="Log every request (secrets masked).",
        ),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """How run and backfill report: the compact report or tables, heartbeat, log format."""
    options = [
        click.option(
            "--quiet",
            is_flag=True,
            expose_value=False,
            callback=_keep,
            help="Print nothing when the run succeeds (exit 0); problems only: for cron mail.",
        ),
        click.option(
            "--details",
            is_flag=True,
            expose_value=False,
            callback=_keep,
            help="Print the full tables even without a terminal (instead of the compact report).",
        ),
        click.option(
            "--show-emails",
            is_flag=True,
            expose_value=False,
            callback=_keep,
            help="Name rejected people by email too in the compact report (else by contact id).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            expose_value=False,
            callback=_keep,
            help="Log records on stderr as text or one JSON object a line (with run id and phase).",
        ),
        click.option(
            "--heartbeat",
            type=click.FloatRange(min=0, min_open=True),
            default=30.0,
            show_default=True,
            metavar="SECONDS",
            expose_value=False,
            callback=_keep,
            help="Seconds between progress lines on stderr when there is no terminal.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _run(ctx: click.Context, config: Config, options: RunOptions) -> RunResult:
    """Run the engine with live progress on stderr (a status line on a terminal, else a heartbeat
    log line); none with --quiet, and log lines only with --log-format json."""
    clock = ctx.obj.get("clock") or Clock()
    live = False if ctx.obj.get("quiet") or ctx.obj.get("log_format") == "json" else None
    progress = report.ProgressReporter(
        Console(stderr=True), clock, ctx.obj.get("heartbeat", 30.0), live
    )
    try:
        with stop_on_signals(clock.stop):
            return build_engine(config, clock, progress).run(options)
    finally:
        progress.close()


def _render(ctx: click.Context, result: RunResult, as_json: bool, secrets: tuple[str, ...]) -> int:
    """JSON; else nothing when --quiet and all went well; tables on a terminal, for --details and
    for a dry run (its plan is what was asked for); else the compact report."""
    code = result.exit_code
    quiet = ctx.obj.get("quiet", False)
    if as_json:
        click.echo(scrub(json.dumps(report.result_to_json(result, code), default=str), secrets))
    elif quiet and code == EXIT_OK:
        pass
    elif ctx.obj.get("details") or (not quiet and (result.dry_run or stdout_is_terminal())):
        report.render_result(Console(soft_wrap=True), result)
    else:
        lines = report.compact_report(result, code, ctx.obj.get("show_emails", False))
        click.echo(scrub("\n".join(lines), secrets))
    return code


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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema: README).")
@output_options
@click.pass_context
@handle_errors
def run(ctx: click.Context, dry_run: bool, as_json: bool) -> int:
    """One incremental run: everything changed in Kommo since the last run."""
    config = _config(ctx)
    result = _run(ctx, config, RunOptions(dry_run=dry_run))
    return _render(ctx, result, as_json, config.secrets)


@cli.command()
@shared_options(before_subcommand=False)
@click.option(
    "--since",
    required=True,
    callback=_moment,
    help="Start of the range (ISO date; UTC unless an offset is given).",
)
@click.option("--until", callback=_moment, help="End of the range (default: now).")
@click.option(
    "--dry-run", is_flag=True, help="Show what the backfill would change; change nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (schema: README).")
@output_options
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
    config = _config(ctx)
    result = _run(ctx, config, RunOptions(dry_run=dry_run, since=since, until=until))
    return _render(ctx, result, as_json, config.secrets)


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
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool, limit: int) -> int:
    """Last runs (status, exit code, error), cursors, queued contacts and pending rejections."""
    config = _config(ctx)
    data = read_status(config, limit)
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        report.render_status(Console(soft_wrap=True), data)
    return EXIT_OK


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
        lambda: _config(ctx), ctx.obj["config_path"], ctx.obj.get("clock") or Clock()
    )
    lines = (
        [json.dumps(checks.to_json(found))]
        if as_json
        else [c.line() for c in found] + [checks.summary(found)]
    )
    click.echo(scrub("\n".join(lines), ctx.obj.get("secrets", ())))
    return checks.exit_code(found)


def _init_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every answer `init` asks for, as a flag; the secrets may come from their variables."""
    options = [
        click.option(
            "--kommo-url", help="The Kommo account's address, like https://mycompany.kommo.com."
        ),
        click.option(
            "--kommo-token", envvar="KOMMO_TOKEN", help="Kommo long-lived token (or KOMMO_TOKEN)."
        ),
        click.option(
            "--pipeline",
            "pipelines",
            multiple=True,
            help="A pipeline to sync, by name or id (repeatable; none: all).",
        ),
        click.option(
            "--consent-field", help="Kommo checkbox field holding email consent (name or id)."
        ),
        click.option(
            "--lead-source-field", help="Kommo contact field holding the lead source (name or id)."
        ),
        click.option(
            "--mailchimp-key",
            envvar="MAILCHIMP_API_KEY",
            help="Mailchimp API key (or MAILCHIMP_API_KEY).",
        ),
        click.option("--mailchimp-audience", help="Mailchimp audience: name, id or web id."),
        click.option(
            "--mailchimp-url", help="Mailchimp API base URL (default: from the key's data center)."
        ),
        click.option(
            "--klaviyo-key",
            envvar="KLAVIYO_API_KEY",
            help="Klaviyo private key (or KLAVIYO_API_KEY).",
        ),
        click.option("--klaviyo-list", help="Klaviyo list every profile joins: name or id."),
        click.option("--klaviyo-url", help="Klaviyo API host (default: https://a.klaviyo.com)."),
        click.option(
            "--dir",
            "folder",
            type=click.Path(file_okay=False),
            help="Where to write both files [.].",
        ),
        click.option(
            "--yes",
            is_flag=True,
            help="Ask nothing: take the flags (and the only audience or list).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@_init_options
@click.pass_context
@handle_errors
def init(ctx: click.Context, **answers: Any) -> int:
    """Write a commented sync.yaml and an env file (mode 0600) from answers asked or given as
    flags, picking pipelines, fields, the audience and the list from the accounts; never
    overwrites a file."""
    from kommo_sync import setup
    from kommo_sync.checks import Failed

    given = setup.Answers(**answers)
    ctx.obj["secrets"] = given.secrets
    _configure_logging(ctx.obj["verbose"], given.secrets)
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


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
