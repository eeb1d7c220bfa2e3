"""Alerts and health pings around a run: a webhook told once per transition (a new failure, a
recovery) and of new rejections, and a healthchecks-style ping URL (start, success, failure) for
dead-man monitoring.

The decision is pure (`events`): the previous settled run's exit code, this run's, and how many
rejections this run found that were not there before. Sending never raises nor fails the run:
each call is bounded by `alerts.timeout` in total (one attempt, one retry on a connection error
or a 5xx) and a failure is one warning naming the host only (the URL's path is a secret).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from kommo_sync import report
from kommo_sync.app import peek_state
from kommo_sync.clock import Clock
from kommo_sync.config import AlertsConfig, Config
from kommo_sync.exits import EXIT_CONFIG, EXIT_FATAL, EXIT_LOCKED, EXIT_OK, EXIT_REJECTED
from kommo_sync.masking import scrub
from kommo_sync.results import RunResult
from kommo_sync.state import State, StateLocation, state_location

log = logging.getLogger(__name__)

FAILED = frozenset({EXIT_CONFIG, EXIT_FATAL})
SETTLED = FAILED | {EXIT_OK, EXIT_REJECTED}  # the codes a transition is judged between
WHAT = {
    "failure": "the run failed",
    "recovery": "recovered: the run succeeded again",
    "rejections": "new rejections",
}


def events(previous: int | None, code: int, new_rejections: int, raised: bool = False) -> list[str]:
    """What to alert on: a failure after a success (or a first run), a success after a failure,
    rejections new in this run. A held lock, an interrupted run: nothing, and they do not count
    as the previous outcome (Monitor.start reads only SETTLED codes). A run that `raised` with
    exit 1 is a bug, not rejections: a failure."""
    if code not in SETTLED:
        return []
    failing, was_failing = code in FAILED or raised, previous in FAILED
    found: list[str] = []
    if failing and not was_failing:
        found.append("failure")
    if was_failing and not failing:
        found.append("recovery")
    if new_rejections:
        found.append("rejections")
    return found


@dataclass(frozen=True)
class Ending:
    """How a run ended, as the alert bodies tell it."""

    exit_code: int
    summary: str
    error: str | None = None
    run_id: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    new_rejections: int = 0
    raised: bool = False  # the run ended by an exception, not with its result

    @property
    def succeeded(self) -> bool:
        return not self.raised and self.exit_code in (EXIT_OK, EXIT_REJECTED)

    @classmethod
    def of(cls, result: RunResult, new_rejections: int, error: str | None) -> Ending:
        code = result.exit_code
        return cls(
            code, report.compact_report(result, code)[0], error, result.run_id,
            result.started_at, result.finished_at, dict(result.counts), new_rejections,
        )  # fmt: skip

    @classmethod
    def failed(cls, code: int, error: str) -> Ending:
        return cls(code, f"the run stopped (exit {code})", error, raised=True)


def body(account: str, event: str, ending: Ending, slack: bool) -> dict[str, Any]:
    """The generic JSON body, or Slack's {"text": ...}: account, what happened, the error."""
    if slack:
        extra = f" ({ending.new_rejections})" if event == "rejections" else ""
        error = f": {ending.error}" if ending.error else ""
        return {
            "text": f"kommo-sync {account}: {WHAT[event]}{extra}, exit {ending.exit_code}{error}"
        }
    return {
        "account": account,
        "event": event,
        "exit_code": ending.exit_code,
        "summary": ending.summary,
        "error": ending.error,
        "run_id": ending.run_id,
        "started_at": _iso(ending.started_at),
        "finished_at": _iso(ending.finished_at),
        "counts": dict(ending.counts),
        "new_rejections": ending.new_rejections,
    }


def _iso(moment: int | None) -> str | None:
    return report.iso(moment) if moment else None


class Monitor:
    """The ping before a run, and the pings and alerts after it; all of it best effort."""

    def __init__(
        self,
        alerts: AlertsConfig,
        account: str,
        secrets: tuple[str, ...],
        state: StateLocation | None,
        clock: Clock,
    ):
        self.alerts, self.account, self.secrets, self.state = alerts, account, secrets, state
        self.clock = clock
        self.previous: int | None = None
        self.newest: dict[str, Any] | None = None  # the state's newest run row before this run

    @classmethod
    def of(cls, config: Config, clock: Clock) -> Monitor:
        return cls(config.alerts, config.account, config.secrets, state_location(config), clock)

    def start(self) -> None:
        """Remember the previous settled outcome (before this run adds its own) and ping start."""
        if self.alerts.webhook:
            found = peek_state(self.state, lambda s: (s.last_finished_run(SETTLED), _newest(s)))
            last, self.newest = found or (None, None)
            self.previous = last["exit_code"] if last else None
        self._ping("/start")

    def finish_failed(self, code: int, error: str) -> None:
        """A run that raised: told with its row in the state when it got as far as writing one."""
        row = peek_state(self.state, _newest) if self.alerts.webhook else None
        if row is None or row["id"] == (self.newest or {}).get("id"):
            return self.finish(Ending.failed(code, error))
        self.finish(
            Ending(
                code,
                f"run {row['id']} stopped (exit {code})",
                error,
                row["id"],
                row["started_at"],
                row["finished_at"],
                row["counts"] or {},
            )  # fmt: skip
        )

    def finish_run(self, result: RunResult) -> None:
        self.finish(Ending.of(result, self._new_rejections(result), self._error(result)))

    def finish(self, ending: Ending) -> None:
        if ending.exit_code != EXIT_LOCKED:  # the run holding the lock pings for itself
            self._ping("" if ending.succeeded else "/fail", ending)
        if not self.alerts.webhook:
            return
        found = events(self.previous, ending.exit_code, ending.new_rejections, ending.raised)
        for event in found:
            if event in self.alerts.on:
                payload = body(self.account, event, ending, self.alerts.format == "slack")
                self._send("alert", self.alerts.webhook, payload)

    def _ping(self, suffix: str, ending: Ending | None = None) -> None:
        if self.alerts.ping_url:
            text = {"text": ending.summary} if ending else None
            self._send("ping", self.alerts.ping_url + suffix, text)

    def _send(self, what: str, url: str, payload: dict[str, Any] | None) -> None:
        data = scrub(json.dumps(payload, default=str), self.secrets) if payload else None
        failure = deliver(url, data, self.alerts, self.clock)
        if failure:
            host = urlsplit(url).hostname
            log.warning("%s to %s not delivered: %s (the run goes on)", what, host, failure)

    def _new_rejections(self, result: RunResult) -> int:
        """Rejections this run recorded first (a repeated one keeps the time it was first seen)."""
        if not (self.alerts.webhook and "rejections" in self.alerts.on and result.rejected):
            return 0
        rows = peek_state(self.state, lambda state: state.rejection_list()) or []
        return sum(
            1
            for row in rows
            if row["run_id"] == result.run_id and row["first_seen"] >= result.started_at
        )

    def _error(self, result: RunResult) -> str | None:
        """Why destinations were set aside, as the run's row keeps it."""
        reasons = [f"{n}: {i['reason']}" for n, i in result.destinations.items() if i["reason"]]
        return scrub("; ".join(reasons), self.secrets) or None


def _newest(state: State) -> dict[str, Any] | None:
    rows = state.last_runs(1)
    return rows[0] if rows else None


def deliver(url: str, data: str | None, alerts: AlertsConfig, clock: Clock) -> str | None:
    """POST `data` (JSON) to `url` within `alerts.timeout_seconds` in all: one attempt, one more
    after a connection error or a 5xx. Returns why it was not delivered, None when it was."""
    deadline = clock.monotonic() + alerts.timeout_seconds
    failure = "no time left"
    for _ in range(2):
        left = deadline - clock.monotonic()
        if left <= 0:
            break
        try:
            response = requests.post(
                url, data=data, headers={"Content-Type": "application/json"}, timeout=left
            )
        except requests.Timeout:
            return f"no answer within {alerts.timeout_seconds:g} s"
        except requests.ConnectionError:
            failure = "could not connect"
            continue
        except requests.RequestException as exc:
            return type(exc).__name__
        if response.ok:
            return None
        failure = f"HTTP {response.status_code}"
        if response.status_code < 500:
            break
    return failure
