"""Prefect: a flow mapping one task over the account folders under KOMMO_SYNC_ACCOUNTS, each a
`kommo_sync.sync()` call; the flow fails when any account does not end with exit 0 (the others
still run). Serve it every 15 minutes with `python prefect_flow.py`.

The calls to kommo_sync are plain functions (`account_configs`, `sync_account`): Prefect only
wraps them, so they run and are tested without Prefect installed.
"""

from __future__ import annotations

import os
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
    from prefect import flow, task
except ImportError:  # Prefect not installed: the functions above still work
    pass
else:
    sync_account_task = task(sync_account, name="kommo-sync account")

    @flow(name="kommo-sync accounts")
    def kommo_sync_flow(root: str = ACCOUNTS) -> list[dict[str, Any]]:
        futures = sync_account_task.map(account_configs(root))
        return [future.result() for future in futures]  # raises the first failure

    if __name__ == "__main__":
        kommo_sync_flow.serve(name="kommo-sync", cron="*/15 * * * *")
