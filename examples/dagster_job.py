"""Dagster: a job that fans out over the account folders under KOMMO_SYNC_ACCOUNTS, one op per
account calling `kommo_sync.sync()`, on a 15-minute schedule. An op fails when its account does
not end with exit 0; the others go on.

The calls to kommo_sync are plain functions (`account_configs`, `sync_account`): Dagster only
wraps them, so they run and are tested without Dagster installed.
"""

from __future__ import annotations

import os
import re
from typing import Any

import kommo_sync
from kommo_sync.accounts import find_accounts

ACCOUNTS = os.environ.get("KOMMO_SYNC_ACCOUNTS", "/etc/kommo-sync")


def account_configs(root: str = ACCOUNTS) -> dict[str, str]:
    """Each account folder's sync.yaml under `root`, by a key Dagster accepts for a mapping."""
    return {
        re.sub(r"\W", "_", account.label): str(account.config) for account in find_accounts([root])
    }


def sync_account(config: str) -> dict[str, Any]:
    """One run of one account: its headline counts, or RunFailed unless it exited 0."""
    return kommo_sync.sync(config).raise_for_exit_code().headline()


try:
    import dagster as dg
except ImportError:  # Dagster not installed: the functions above still work
    pass
else:

    @dg.op(out=dg.DynamicOut(str))
    def accounts_op() -> Any:
        for key, config in account_configs().items():
            yield dg.DynamicOutput(config, mapping_key=key)

    @dg.op
    def sync_account_op(config: str) -> dict[str, Any]:
        return sync_account(config)

    @dg.job
    def kommo_sync_job() -> None:
        accounts_op().map(sync_account_op)

    kommo_sync_schedule = dg.ScheduleDefinition(job=kommo_sync_job, cron_schedule="*/15 * * * *")
    defs = dg.Definitions(jobs=[kommo_sync_job], schedules=[kommo_sync_schedule])
