"""kommo-sync: keep email marketing platforms in step with a Kommo CRM.

`kommo_sync.sync(config)` runs one account from Python (kommo_sync.api); its report and error
types are importable from here too."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
_API = (
    "sync",
    "RunReport",
    "RunFailed",
    "StopFlag",
    "SyncError",
    "ConfigError",
    "LockedError",
    "FatalError",
    "RetryLater",
    "RecordRejected",
    "Interrupted",
    "exit_code_of",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """The API on first use, so `import kommo_sync` (and the CLI's start) stays light."""
    if name in _API:
        from kommo_sync import api

        return getattr(api, name)
    raise AttributeError(f"module 'kommo_sync' has no attribute {name!r}")
