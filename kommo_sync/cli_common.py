"""What every command shares: logging on stderr with secrets masked, the config loaded with its
warnings shown, our error kinds mapped to messages and exit codes, and the options given before
or after the subcommand."""

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

from kommo_sync import logs, report
from kommo_sync.config import Config, load_config, parse_moment
from kommo_sync.errors import (
    ConfigError,
    FatalError,
    Interrupted,
    LockedError,
    RecordRejected,
    RetryLater,
)
from kommo_sync.exits import EXIT_CONFIG, EXIT_FATAL, EXIT_LOCKED
from kommo_sync.masking import scrub


class ScrubbingFilter(logging.Filter):
    """Masks secrets in every log record, whatever library wrote it."""

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage(), self.secrets)
        record.args = ()
        return True


def configure_logging(
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
        click.echo(json.dumps(report.error_to_json(code, message, (ctx.obj or {}).get("account"))))
    return code


def load(ctx: click.Context) -> Config:
    logs.reset()
    config = load_config(ctx.obj["config_path"], env_file=ctx.obj.get("env_file"))
    ctx.obj["secrets"], ctx.obj["account"] = config.secrets, config.account
    logs.bind(account=config.account)
    configure_logging(
        ctx.obj["verbose"],
        config.secrets,
        ctx.obj.get("log_format", "text"),
        ctx.obj.get("quiet", False),
    )
    for warning in config.warnings:
        click.echo(warning, err=True)
    return config


def moment(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
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


def metrics_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--metrics-file, for run and backfill."""
    return click.option(
        "--metrics-file",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_keep,
        help="Write Prometheus metrics there after the run (node-exporter textfile collector).",
    )(command)
