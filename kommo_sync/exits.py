"""The exit-code contract in one place: the CLI exits with these, and each run's row records the
code its process ended with (so `status` and monitoring agree with cron's mail)."""

from __future__ import annotations

import signal

from kommo_sync.errors import (
    ConfigError,
    FatalError,
    Interrupted,
    LockedError,
    RecordRejected,
    RetryLater,
    RunFailed,
)

EXIT_OK, EXIT_REJECTED, EXIT_CONFIG, EXIT_LOCKED, EXIT_FATAL = 0, 1, 2, 3, 4
EXIT_STALE = 5  # `status --check`: the last run failed, or the last success is older than --max-age
EXIT_UNEXPECTED = 1  # what Python exits with when an exception escapes (a bug)
_BY_KIND: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, EXIT_CONFIG),
    (LockedError, EXIT_LOCKED),
    (FatalError, EXIT_FATAL),
    (RetryLater, EXIT_FATAL),
    (RecordRejected, EXIT_FATAL),
    (KeyboardInterrupt, 128 + signal.SIGINT),
)


def exit_code_of(error: BaseException) -> int:
    """The code a run that ended with `error` exits with."""
    if isinstance(error, Interrupted | RunFailed):
        return error.exit_code
    return next((code for kind, code in _BY_KIND if isinstance(error, kind)), EXIT_UNEXPECTED)
