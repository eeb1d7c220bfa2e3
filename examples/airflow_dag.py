"""Airflow: every 15 minutes, one mapped task per account folder under KOMMO_SYNC_ACCOUNTS,
each a `kommo_sync.sync()` call in the worker's process. A task fails when its account does
not end with exit 0 (rejections, a destination set aside, a lock held by another run).

The calls to kommo_sync are plain functions (`account_configs`, `sync_account`): Airflow only
wraps them, so they run and are tested without Airflow installed.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import kommo_sync
from kommo_sync.accounts import find_accounts

ACCOUNTS = os.environ.get("KOMMO_SYNC_ACCOUNTS", "/etc/kommo-sync")


def account_configs(root: str = ACCOUNTS) -> list[str]:
    """The sync.yaml of each account folder under `root`."""
    return [str(account.config) for account in find_accounts([root])]


def sync_account(config: str) -> dict[str, Any]:
    """One run of one account: its headline counts, or RunFailed unless it exited 0."""
    return kommo_sync.sync(config).raise_for_exit_code().headline()


try:
    from airflow.decorators import dag, task
except ImportError:  # Airflow not installed: the functions above still work
    pass
else:

    @dag(
        schedule="*/15 * * * *",
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
    )
    def kommo_sync_accounts() -> None:
        task(sync_account).expand(config=task(account_configs)())

    kommo_sync_accounts()
