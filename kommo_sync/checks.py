"""Setup checks that need the accounts, for `kommo-sync check` and `init`: each credential, the
Klaviyo key's read scopes, the Mailchimp audience and its room for merge fields, the Klaviyo
lists, the Kommo pipelines and contact fields. Every request is a GET, so checking writes nothing
anywhere. The local checks are the config's own (load_config, check_state_file); this module only
adds what the accounts alone can tell, and the account listings `init` offers to pick from."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kommo_sync.checklist import Check, Failed, vendor_failures
from kommo_sync.clock import Clock
from kommo_sync.config import Config, KommoConfig
from kommo_sync.destinations import registry
from kommo_sync.errors import (
    ConfigError,
)
from kommo_sync.exits import EXIT_CONFIG, EXIT_OK
from kommo_sync.field_checks import field_map_checks
from kommo_sync.kommo import KommoClient, kommo_http, resolve_fields
from kommo_sync.model import Catalog
from kommo_sync.pipelines import find_pipeline, pipeline_errors
from kommo_sync.state import State, check_state_file, pg_location
from kommo_sync.state.postgres import PgLocation

FIELDS_NOT_SET = {
    "consent_field": "not set: consent is not tracked, everyone counts as consenting",
    "lead_source_field": "not set: no lead source is synced",
}


def config_failure(error: ConfigError) -> Check:
    return Check(error.key, error.problem, EXIT_CONFIG)


def exit_code(checks: Sequence[Check]) -> int:
    """4 before 2: a vendor that cannot be asked hides whatever else may be wrong with it."""
    return max((check.exit_code for check in checks), default=EXIT_OK)


def summary(checks: Sequence[Check]) -> str:
    failed = sum(not check.ok for check in checks)
    return (
        f"{failed} of {len(checks)} checks failed" if failed else f"all {len(checks)} checks passed"
    )


def to_json(checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "exit_code": exit_code(checks),
        "checks": [
            {"key": c.key, "ok": c.ok, "exit_code": c.exit_code, "message": c.message}
            for c in checks
        ],
    }


def run_all(load: Callable[[], Config], path: str | Path, clock: Clock) -> list[Check]:
    """The config's own checks (the first wrong key ends them), then every remote one."""
    try:
        config = load()
    except ConfigError as exc:
        return [config_failure(exc)]
    return local_checks(config, path) + remote_checks(config, clock)


# local -------------------------------------------------------------------------------------------
def local_checks(config: Config, path: str | Path) -> list[Check]:
    location = pg_location(config)
    return [
        Check(
            "config",
            f"{path}: every key is valid (URL shapes, https, the Mailchimp data center, "
            "region and currency codes)",
        ),
        state_check(config.state) if location is None else pg_state_check(location),
    ]


def state_check(path: Path) -> Check:
    """The state file is one this release can use, or its folder can be made and written."""
    try:
        check_state_file(path)
    except ConfigError as exc:
        return config_failure(exc)
    if path.exists() and path.stat().st_size:
        return Check("state", f"{path}: a kommo-sync state this release can use")
    folder = next(parent for parent in path.absolute().parents if parent.exists())
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return Check(
            "state",
            f"{path} cannot be created: {folder} is not a folder you may write",
            EXIT_CONFIG,
        )
    return Check("state", f"{path}: none yet, the first run creates it")


def pg_state_check(location: PgLocation) -> Check:
    """The PostgreSQL state answers, its schema can be made (in a rolled-back transaction) and
    is one this release can use."""
    try:
        with State.open_postgres(location, dry_run=True):
            pass
    except ConfigError as exc:
        return config_failure(exc)
    return Check("state", f"{location.where()}: reachable, a kommo-sync state this release can use")


# remote ------------------------------------------------------------------------------------------
def remote_checks(config: Config, clock: Clock) -> list[Check]:
    timeout = config.network.timeout_seconds
    checks = kommo_checks(config.kommo, clock, timeout)
    checks += field_map_checks(config, clock, timeout)
    for vendor in registry.vendors():
        section = config.destinations.get(vendor.name)
        if section is not None and vendor.checks is not None:
            checks += vendor.checks(section, clock, timeout)
    return checks


def kommo_account(
    config: KommoConfig,
    clock: Clock,
    timeout: float,
    skipped: str = "pipelines and fields not checked",
) -> tuple[Catalog, list[dict[str, Any]]]:
    """The account's pipelines and contact fields (raises Failed naming the key)."""
    client = KommoClient(kommo_http(config, clock, timeout))
    with vendor_failures("kommo", _auth_key(config), skipped):
        return client.catalog(), client.custom_fields()


def _auth_key(config: KommoConfig) -> str:
    """The key a refused login points at: the OAuth refresh token or the long-lived token."""
    return "token" if config.oauth is None else "oauth.refresh_token"


def _auth_what(config: KommoConfig) -> str:
    return "token" if config.oauth is None else "OAuth integration's token (refreshed and stored)"


def kommo_checks(config: KommoConfig, clock: Clock, timeout: float) -> list[Check]:
    try:
        catalog, fields = kommo_account(config, clock, timeout)
    except Failed as failed:
        return [failed.check]
    found = f"{len(catalog.pipelines)} pipelines, {len(fields)} contact fields"
    return [
        Check(f"kommo.{_auth_key(config)}", f"Kommo accepted the {_auth_what(config)} ({found})"),
        *pipeline_checks(config.pipelines, catalog),
        *[field_check(config, fields, name) for name in FIELDS_NOT_SET],
    ]


# pipelines and fields ----------------------------------------------------------------------------
def pipeline_checks(wanted: Sequence[str | int], catalog: Catalog) -> list[Check]:
    if not wanted:
        names = ", ".join(sorted(repr(p.name) for p in catalog.pipelines.values()))
        return [Check("kommo.pipelines", f"not set: every pipeline is synced ({names})")]
    errors = {error.key: error for error in pipeline_errors(wanted, catalog)}
    checks = []
    for n, value in enumerate(wanted):
        key, pipeline = f"kommo.pipelines[{n}]", find_pipeline(value, catalog)
        checks.append(
            config_failure(errors[key])
            if pipeline is None
            else Check(key, f"pipeline {pipeline.name!r} (id {pipeline.id})")
        )
    return checks


def field_check(config: KommoConfig, fields: list[dict[str, Any]], name: str) -> Check:
    """`kommo.consent_field` or `kommo.lead_source_field`, found as the run finds it."""
    key, wanted = f"kommo.{name}", getattr(config, name)
    if wanted is None:
        return Check(key, FIELDS_NOT_SET[name])
    others = {other: None for other in FIELDS_NOT_SET if other != name}
    alone = replace(config, **others)  # type: ignore[arg-type]  # only the optional field keys
    try:
        found = resolve_fields(alone, fields)
    except ConfigError as exc:
        return config_failure(exc)
    field_id = found.consent_id if name == "consent_field" else found.lead_source_id
    field = next(f for f in fields if f.get("id") == field_id)
    kind = ", a checkbox field" if name == "consent_field" else ""
    return Check(key, f"{field.get('name')!r}{kind} (id {field_id})")
