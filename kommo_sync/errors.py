"""The error taxonomy, decided in one place (http.classify) and mapped to exit codes in cli.

- ConfigError: the user must fix sync.yaml or the account setup (exit 2).
- FatalError: the run cannot go on (bad token, API unreachable, repeated 429s) (exit 4).
- RetryLater: a transient failure that outlived the retry policy; the record is retried next run.
- RecordRejected: the vendor refused this one record; the run goes on.
"""
from __future__ import annotations


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
    """The run must stop; the message tells the user what to do."""


class RetryLater(SyncError):
    """A transient failure (5xx, timeout, 429) that the retry policy could not get past."""


class RecordRejected(SyncError):
    """The vendor refused one record; `permanent` ones are retried only when the record changes."""

    def __init__(self, reason: str, permanent: bool = True, status: int | None = None):
        super().__init__(reason)
        self.reason, self.permanent, self.status = reason, permanent, status
