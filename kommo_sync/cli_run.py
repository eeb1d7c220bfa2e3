"""Running the engine from a command and rendering its result, shared by `run`, `backfill`,
`retry --now` and `reconcile`."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console

from kommo_sync import report
from kommo_sync.alerts import Ending, Monitor
from kommo_sync.api import execute
from kommo_sync.cli_common import load
from kommo_sync.clock import Clock
from kommo_sync.config import Config, alerts_despite
from kommo_sync.errors import ConfigError
from kommo_sync.exits import EXIT_CONFIG, EXIT_OK, exit_code_of
from kommo_sync.masking import scrub
from kommo_sync.metrics import Meter
from kommo_sync.results import RunOptions, RunResult
from kommo_sync.signals import stop_on_signals
from kommo_sync.state import state_location

GC_THRESHOLD = 100_000  # allocations before a young collection (Python's default: 700)


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def run_engine(ctx: click.Context, config: Config, options: RunOptions) -> RunResult:
    """Run the engine with live progress on stderr (a status line on a terminal, else a heartbeat
    log line); none with --quiet, and log lines only with --log-format json."""
    clock = ctx.obj.get("clock") or Clock()
    live = False if ctx.obj.get("quiet") or ctx.obj.get("log_format") == "json" else None
    progress = report.ProgressReporter(
        Console(stderr=True), clock, ctx.obj.get("heartbeat", 30.0), live
    )
    try:
        with stop_on_signals(clock.stop), collecting_rarely():
            return execute(config, options, clock, progress)
    finally:
        progress.close()


def load_for_run(ctx: click.Context, dry_run: bool) -> Config:
    """The config of `run` or `backfill`; when it does not load, a failure alert still goes out
    if its `alerts:` section parses on its own (there is no state to compare with: each such run
    alerts)."""
    try:
        return load(ctx)
    except ConfigError as exc:
        found = None if dry_run else alerts_despite(ctx.obj["config_path"], ctx.obj.get("env_file"))
        if found:
            account, alerts = found
            clock = ctx.obj.get("clock") or Clock()
            monitor = Monitor(alerts, account, tuple(alerts.secrets()), None, clock)
            monitor.finish(Ending.failed(EXIT_CONFIG, f"config error: {exc}"))
        raise


def run_monitored(ctx: click.Context, config: Config, options: RunOptions, as_json: bool) -> int:
    """`run` and `backfill`: the run rendered, with its alerts, pings and metrics file around it
    (a failure re-raised after them, for handle_errors to report). A dry run alerts and pings
    nobody and writes no metrics."""
    if options.dry_run:
        return render_run(ctx, run_engine(ctx, config, options), as_json, config.secrets)
    clock = ctx.obj.get("clock") or Clock()
    monitor = Monitor.of(config, clock)
    monitor.start()
    meter = Meter(ctx.obj.get("metrics_file"), config.account, state_location(config), clock)
    try:
        result = run_engine(ctx, config, options)
    except BaseException as exc:
        code = exit_code_of(exc)
        monitor.finish_failed(code, scrub(str(exc) or type(exc).__name__, config.secrets))
        meter.finish(code, None)
        raise
    monitor.finish_run(result)
    meter.finish(result.exit_code, result.counts)
    return render_run(ctx, result, as_json, config.secrets)


@contextmanager
def collecting_rarely() -> Iterator[None]:
    """Python's cyclic GC, set for a run's many short-lived records, for the run only: at the
    default thresholds a 100k sync spent its CPU and up to half-second pauses collecting what
    reference counting frees anyway. The CLI owns its process; the Python API leaves it be."""
    before = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def render_run(
    ctx: click.Context, result: RunResult, as_json: bool, secrets: tuple[str, ...]
) -> int:
    """JSON; else nothing when --quiet and all went well; tables on a terminal, for --details and
    for a dry run (its plan is what was asked for); else the compact report."""
    code = result.exit_code
    quiet = ctx.obj.get("quiet", False)
    if as_json:
        click.echo(json.dumps(report.scrubbed_json(result, code, secrets)))
    elif quiet and code == EXIT_OK:
        pass
    elif ctx.obj.get("details") or (not quiet and (result.dry_run or stdout_is_terminal())):
        report.render_result(Console(soft_wrap=True), result)
    else:
        lines = report.compact_report(result, code, ctx.obj.get("show_emails", False))
        click.echo(scrub("\n".join(lines), secrets))
    return code
