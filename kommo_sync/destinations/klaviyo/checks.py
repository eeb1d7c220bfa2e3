"""`kommo-sync check` and `init` for Klaviyo: the key and its read scopes, the lists. Every
request is a GET."""

from __future__ import annotations

from typing import Any

from kommo_sync.checklist import Check, Failed, Named, list_check, vendor_failures
from kommo_sync.clock import Clock
from kommo_sync.destinations.klaviyo.api import klaviyo_http
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.exits import EXIT_FATAL
from kommo_sync.http import HttpClient, describe_error
from kommo_sync.paging import linked_pages

RUN_SCOPES = "a run needs profiles, lists, events and subscriptions"


def klaviyo_lists(http: HttpClient) -> list[Named]:
    """Every list of the account (Klaviyo serves 10 a page); the key must be allowed to read
    them."""
    bodies = linked_pages(
        lambda: _readable(http, "/api/lists", "lists"),
        lambda url: _readable(http, url, "lists"),
        "Klaviyo GET /api/lists",
    )
    return [
        Named(item["id"], (item.get("attributes") or {}).get("name") or "")
        for body in bodies
        for item in body.get("data") or []
    ]


def _readable(http: HttpClient, path: str, what: str, params: dict[str, Any] | None = None) -> Any:
    """A read the key's scopes must allow: Klaviyo answers 403 to a scope the key lacks."""
    response = http.request("GET", path, params=params, allow=(403,), need_body=True)
    if response.status_code == 403:
        raise Failed(
            Check(
                "klaviyo.api_key",
                f"the key may not read {what} (it needs the {what}:read scope; "
                f"{RUN_SCOPES}): {describe_error(response)}",
                EXIT_FATAL,
            )
        )
    return response.json()


def klaviyo_checks(config: KlaviyoConfig, clock: Clock, timeout: float) -> list[Check]:
    http = klaviyo_http(config, clock, timeout)
    try:
        with vendor_failures("klaviyo", "api_key", "lists not checked"):
            lists = klaviyo_lists(http)
            _readable(http, "/api/profiles", "profiles", {"page[size]": 1})
    except Failed as failed:
        return [failed.check]
    wanted = {"klaviyo.list_id": config.list_id}
    wanted.update(
        {
            f"klaviyo.lists_by_stage.{stage.value}": list_id
            for stage, list_id in config.lists_by_stage.items()
        }
    )
    return [
        Check(
            "klaviyo.api_key",
            "Klaviyo accepted the key; it can read lists and profiles (write scopes "
            "show only when a run writes)",
        ),
        *[list_check(key, list_id, lists) for key, list_id in wanted.items()],
    ]
