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
from typing import Any, Callable

import click
from rich.console import Console

from kommo_sync import __version__, report
from kommo_sync.app import build_engine, read_status
from kommo_sync.clock import Clock
from kommo_sync.config import Config, load_config, parse_moment
from kommo_sync.engine import RunOptions, RunResult
from kommo_sync.errors import ConfigError, FatalError, Interrupted, LockedError, RecordRejected, RetryLater
from kommo_sync.signals import stop_on_signals

EXIT_OK, EXIT_REJECTED, EXIT_CONFIG, EXIT_LOCKED, EXIT_FATAL = 0, 1, 2, 3, 4


class ScrubbingFilter(logging.Filter):
    """Masks secrets in every log record, whatever library wrote it."""

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = report.scrub(record.getMessage(), self.secrets)
        record.args = ()
        return True


def _configure_logging(verbose: bool, secrets: tuple[str, ...]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ScrubbingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("kommo_sync.progress").setLevel(logging.INFO)
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
            code = _fail(f"run {exc}: what was recorded stays recorded; the next run continues",
                         exc.exit_code, secrets)
        except KeyboardInterrupt:
            code = _fail("interrupted by SIGINT", Interrupted(signal.SIGINT).exit_code, secrets)
        ctx.exit(code)

    return wrapper


def _fail(message: str, code: int, secrets: tuple[str, ...]) -> int:
    click.echo(report.scrub(message, secrets), err=True)
    return code


def _config(ctx: click.Context) -> Config:
    config = load_config(ctx.obj["config_path"], env_file=ctx.obj.get("env_file"))
    ctx.obj["secrets"] = config.secrets
    _configure_logging(ctx.obj["verbose"], config.secrets)
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
        click.option("--config", "config_path", default="./sync.yaml" if top else None,
                     envvar="KOMMO_SYNC_CONFIG" if top else None, show_default=top,
                     expose_value=False, callback=_keep,
                     help="Path of sync.yaml (also read from KOMMO_SYNC_CONFIG)."),
        click.option("--env-file", type=click.Path(dir_okay=False), expose_value=False, callback=_keep,
                     help="KEY=value file for ${VAR} secrets not in the environment or a VAR_FILE."),
        click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_keep,
                     help="Log every request (secrets masked)."),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _run(ctx: click.Context, config: Config, options: RunOptions) -> RunResult:
    """Run the engine with live progress on stderr (a status line on a TTY, log lines in cron)."""
    clock = ctx.obj.get("clock") or Clock()
    progress = report.ProgressReporter(Console(stderr=True), clock)
    try:
        with stop_on_signals(clock.stop):
            return build_engine(config, clock, progress).run(options)
    finally:
        progress.close()


def _render(result: RunResult, as_json: bool, secrets: tuple[str, ...]) -> int:
    console = Console(soft_wrap=True)
    if as_json:
        text = report.scrub(json.dumps(report.result_to_json(result), default=str), secrets)
        click.echo(text)
    else:
        report.render_result(console, result)
    if result.set_aside:
        return EXIT_CONFIG if result.set_aside_by_config_only else EXIT_FATAL
    return EXIT_REJECTED if result.rejected else EXIT_OK


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@shared_options(before_subcommand=True)
@click.version_option(__version__, "--version", prog_name="kommo-sync", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep Mailchimp and Klaviyo in step with Kommo CRM."""
    ctx.ensure_object(dict).setdefault("verbose", False)


@cli.command()
@shared_options(before_subcommand=False)
@click.option("--dry-run", is_flag=True, help="Show what the run would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def run(ctx: click.Context, dry_run: bool, as_json: bool) -> int:
    """One incremental run: everything changed in Kommo since the last run."""
    config = _config(ctx)
    result = _run(ctx, config, RunOptions(dry_run=dry_run))
    return _render(result, as_json, config.secrets)


@cli.command()
@shared_options(before_subcommand=False)
@click.option("--since", required=True, callback=_moment, help="Start of the range (ISO date; UTC unless an offset is given).")
@click.option("--until", callback=_moment, help="End of the range (default: now).")
@click.option("--dry-run", is_flag=True, help="Show what the backfill would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def backfill(ctx: click.Context, since: int, until: int | None, dry_run: bool, as_json: bool) -> int:
    """Re-sync a bounded range of Kommo history; the incremental cursor stays where it is."""
    if until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    if since > (ctx.obj.get("clock") or Clock()).now():
        raise click.BadParameter("it is in the future: there is nothing to backfill yet",
                                 param_hint="--since")
    config = _config(ctx)
    result = _run(ctx, config, RunOptions(dry_run=dry_run, since=since, until=until))
    return _render(result, as_json, config.secrets)


@cli.command()
@shared_options(before_subcommand=False)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool) -> int:
    """Last runs, cursors, queued contacts and pending rejections."""
    config = _config(ctx)
    data = read_status(config)
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        report.render_status(Console(soft_wrap=True), data)
    return EXIT_OK


@cli.command()
@click.option("--contacts", default=200, show_default=True, type=click.IntRange(1, 100_000),
              help="How many contacts to seed.")
@click.pass_context
@handle_errors
def demo(ctx: click.Context, contacts: int) -> int:
    """Start local sandboxes with realistic data, run a sync against them, print the report."""
    from kommo_sync.demo import run_demo

    return run_demo(Console(soft_wrap=True), contacts)


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
