"""The error taxonomy. Which HTTP answer is which kind is decided once, in `failures.RULES`;
exit codes are mapped in cli.

- ConfigError: the user must fix sync.yaml or the account setup (exit 2).
- FatalError: the run cannot go on with this vendor (bad token, down after retries, a paging
  loop). Raised by Kommo it stops the run; by a destination it sets that destination aside.
- RetryLater: a transient failure that outlived the retry policy; the records are retried next run.
- OutcomeUnknown: a write that is not safe to repeat may or may not have been applied (reset,
  timeout, 5xx after the body was sent); the caller settles it by reading back.
- RecordRejected: the vendor refused a request; `permanent` only when it named the record as bad.
- Interrupted: a stop was asked for (SIGTERM, SIGINT); the run ended at a safe point
  (exit 128 + signal).
- RunFailed: a run that ended with a non-zero exit code (rejections, a destination set aside),
  raised only on request by the Python API (`RunReport.raise_for_exit_code`).
"""

from __future__ import annotations

import signal
from typing import Any


class SyncError(Exception):
    """Base of every error kommo-sync raises on purpose."""


class ConfigError(SyncError):
    """Bad or missing configuration; the message names the key path."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


class LockedError(SyncError):
    """Another run holds the state file's lock."""


class FatalError(SyncError):
    """The run cannot go on with this vendor; the message tells the user what to do."""


class VendorDown(FatalError):
    """The vendor stayed unreachable, failing or throttling after every retry."""


class PagingLoop(FatalError):
    """A paged read served a page it had served before, or more pages than it said it held."""


class RetryLater(SyncError):
    """A transient failure (5xx, timeout, 429) that the retry policy could not get past."""


class OutcomeUnknown(RetryLater):
    """A write that must not be repeated blindly may have been applied: settle it by reading
    back."""


class Interrupted(SyncError):
    """A signal asked the run to stop: it ended at a safe point (a sleep, a wait, between
    requests). What was recorded stays recorded; the next run goes on from there."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum


class RecordRejected(SyncError):
    """The vendor refused a request; `permanent` ones are retried only when the record changes."""

    def __init__(self, reason: str, permanent: bool = True, status: int | None = None):
        super().__init__(reason)
        self.reason, self.permanent, self.status = reason, permanent, status


class RequestRefused(RecordRejected):
    """A whole request refused with a 4xx that names no record: transient for all it held,
    unless the caller can attribute it (`body` holds the parsed error body, or None)."""

    def __init__(self, reason: str, status: int, body: Any = None, where: str = ""):
        super().__init__(reason, permanent=False, status=status)
        self.body = body
        self.args = (f"{where} (HTTP {status}): {reason}" if where else reason,)


class RunFailed(SyncError):
    """A run that ended, with a non-zero exit code (1 rejections, 4 or 2 a destination set
    aside); `exit_code` is it."""

    def __init__(self, account: str, exit_code: int):
        super().__init__(f"kommo-sync {account}: the run ended with exit {exit_code}")
        self.account, self.exit_code = account, exit_code
