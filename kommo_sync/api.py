"""The Python API: one sync of one account, for orchestrators (Airflow, Dagster, Prefect) and
scripts.

    report = kommo_sync.sync("/etc/kommo-sync/acme/sync.yaml")
    if report.exit_code != 0: ...

Unlike the CLI, a call leaves its process alone: it installs no signal handler, configures no
logging (records go to the `kommo_sync` loggers, for the caller's handlers; add
`kommo_sync.logs.ContextFilter` to stamp them with account, run and phase), keeps Python's gc
thresholds and the working directory as they are. A caller stops a run at its next safe point
with `stop` (a StopFlag: `stop.request(signal.SIGTERM)`, from any thread). Calls for different
accounts may run in parallel threads; they share the log context (kommo_sync.logs), so a record's
account and run id are those of the run that began last.

Errors, each mapping to the CLI's exit code (kommo_sync.exits):

- ConfigError (2): the config, or an argument, is wrong; `.key` names it.
- LockedError (3): another run of this account holds the state file's lock.
- FatalError, RetryLater, RecordRejected (4): the run could not go on with Kommo.
- Interrupted (128 + signal): `stop` was requested; what was recorded stays recorded.

A destination set aside or records rejected do not raise: they are in the report and its
`exit_code` (4 or 2, and 1); `report.raise_for_exit_code()` raises RunFailed for them (an
orchestrator's task then fails).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from kommo_sync import logs, report
from kommo_sync.app import build_engine
from kommo_sync.clock import Clock, StopFlag
from kommo_sync.config import Config, load_config, parse_moment
from kommo_sync.errors import (
    ConfigError,
    FatalError,
    Interrupted,
    LockedError,
    RecordRejected,
    RetryLater,
    RunFailed,
    SyncError,
)
from kommo_sync.exits import exit_code_of
from kommo_sync.results import RunOptions, RunResult
from kommo_sync.tally import Progress

__all__ = [
    "ConfigError",
    "FatalError",
    "Interrupted",
    "LockedError",
    "RecordRejected",
    "RetryLater",
    "RunFailed",
    "RunReport",
    "StopFlag",
    "SyncError",
    "exit_code_of",
    "sync",
]

Moment = int | float | str | datetime | None


@dataclass(frozen=True)
class RunReport:
    """What one run did: `data` is the document `kommo-sync run --json` prints (schema:
    kommo_sync/schema/run-report.schema.json), secrets masked."""

    data: dict[str, Any]
    result: RunResult = field(repr=False, compare=False)

    @property
    def exit_code(self) -> int:
        """0 done; 1 records rejected; 4 a destination set aside (2 when only its config is
        wrong)."""
        code: int = self.data["exit_code"]
        return code

    @property
    def account(self) -> str:
        return self.result.account

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.data["counts"]
        return counts

    def as_json(self) -> dict[str, Any]:
        return self.data

    def raise_for_exit_code(self) -> RunReport:
        """Raise RunFailed unless the run exited 0; else return the report."""
        if self.exit_code:
            raise RunFailed(self.account, self.exit_code)
        return self

    def headline(self) -> dict[str, Any]:
        """The account, exit code and headline counts: small enough for an XCom or a log."""
        counts = self.counts
        return {
            "account": self.account,
            "exit_code": self.exit_code,
            **{key: counts[key] for key in report.HEADLINE},
        }


def sync(
    config: str | Path | Config,
    mode: Literal["run", "backfill"] = "run",
    since: Moment = None,
    until: Moment = None,
    dry_run: bool = False,
    full_resync: bool = False,
    stop: StopFlag | None = None,
    *,
    clock: Clock | None = None,
) -> RunReport:
    """One run of one account, as `kommo-sync run` (or `backfill --since`) makes it.

    `config`: the path of a sync.yaml or a loaded Config. `since`/`until` (backfill only):
    Unix seconds, a datetime or an ISO date (UTC unless an offset is given). `stop`: a flag the
    caller may request from another thread. `clock`: simulated time for tests (it carries its
    own stop flag; give `stop` or `clock`, not both).
    """
    if clock is not None and stop is not None:
        raise ConfigError("stop", "give stop or clock, not both: a clock carries its own flag")
    clock = clock or Clock(stop)
    loaded = config if isinstance(config, Config) else load_config(config)
    options = run_options(mode, since, until, dry_run, full_resync, clock.now())
    result = execute(loaded, options, clock)
    return RunReport(report.scrubbed_json(result, result.exit_code, loaded.secrets), result)


def execute(
    config: Config, options: RunOptions, clock: Clock, progress: Progress | None = None
) -> RunResult:
    """The run both the CLI and `sync()` make; the CLI wraps it in its process-wide settings
    (signal handlers, gc thresholds, logging), the API in none."""
    logs.bind(account=config.account)
    return build_engine(config, clock, progress).run(options)


def run_options(
    mode: str, since: Moment, until: Moment, dry_run: bool, full_resync: bool, now: float
) -> RunOptions:
    """The arguments checked as the CLI checks its options; a wrong one raises ConfigError."""
    start, end = _moment("since", since), _moment("until", until)
    if mode == "run":
        if start is not None or end is not None:
            raise ConfigError("since", "a run reads what changed since the last run: use backfill")
    elif mode == "backfill":
        if start is None:
            raise ConfigError("since", "a backfill needs the start of its range")
        if full_resync:
            raise ConfigError("full_resync", "only a run re-pushes everyone")
        if end is not None and end <= start:
            raise ConfigError("until", "must be after since")
        if start > now:
            raise ConfigError("since", "it is in the future: there is nothing to backfill yet")
    else:
        raise ConfigError("mode", f"{mode!r}: use 'run' or 'backfill'")
    return RunOptions(dry_run=dry_run, since=start, until=end, full_resync=full_resync)


def _moment(name: str, value: Moment) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, str):
        try:
            return int(parse_moment(value).timestamp())
        except ValueError:
            raise ConfigError(name, f"not an ISO date or datetime: {value!r}") from None
    return int(value)
