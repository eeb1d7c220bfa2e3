"""Klaviyo's API as this package speaks it: the HTTP client, JSON:API request bodies, the
locators that map error pointers back to input rows, error texts, and paging.

Paging goes only through `kommo_sync.paging.linked_pages`: JSON:API collections follow
`links.next` (a full URL with a cursor), and a next link served before is a PagingLoop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from kommo_sync.clock import Clock
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.http import HttpClient
from kommo_sync.paging import linked_pages

JSONAPI = "application/vnd.api+json"
RATE_PER_SECOND = 10.0
MAX_CONNECTIONS = 4
PAGE_SIZE = 100
SMALL_RUN = 10  # up to this many rows, one request each is cheaper than a job and its polls
CUSTOM_SOURCE = "Kommo CRM sync"
ROW_POINTER = re.compile(r"^/data/attributes/profiles/data/(\d+)")
LIST_POINTER = re.compile(r"^/data/(\d+)")
EVENT_POINTER = re.compile(
    r"^/data/attributes/events-bulk-create/data/(\d+)(?:/attributes/events/data/(\d+))?"
)

Locator = Callable[[str], list[int]]
"""Input positions an error's `source.pointer` names (none when it names no row)."""


def klaviyo_http(config: KlaviyoConfig, clock: Clock, timeout: float = 60.0) -> HttpClient:
    headers = {
        "Authorization": f"Klaviyo-API-Key {config.api_key}",
        "revision": config.revision,
        "Accept": JSONAPI,
        "Content-Type": JSONAPI,
    }
    return HttpClient(
        base_url=config.base_url,
        vendor="Klaviyo",
        clock=clock,
        headers=headers,
        rate_per_second=RATE_PER_SECOND,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        auth_hint="check klaviyo.api_key (KLAVIYO_API_KEY) and its scopes",
    )


# request bodies --------------------------------------------------------------------------------
def import_job_body(rows: list[dict[str, Any]], list_ids: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": rows}},
    }
    if list_ids:
        data["relationships"] = {"lists": {"data": [{"type": "list", "id": i} for i in list_ids]}}
    return {"data": data}


def list_body(profile_ids: list[str | None]) -> dict[str, Any]:
    """The profiles a list relationship call adds or removes."""
    return {"data": [{"type": "profile", "id": profile_id} for profile_id in profile_ids]}


@dataclass(frozen=True)
class ConsentRow:
    """One profile of a Bulk Subscribe / Unsubscribe job: the profile id when known, the email,
    and for SMS the E.164 phone and (age-gated accounts) the date of birth."""

    profile_id: str | None
    email: str
    phone: str | None = None
    birth_date: str | None = None


def consent_body(
    job_type: str,
    consent: str,
    rows: list[ConsentRow],
    list_id: str | None = None,
    channel: str = "email",
) -> dict[str, Any]:
    """Bulk Subscribe / Unsubscribe body for one channel's marketing (email or sms)."""
    profiles = [_consent_row(consent, row, channel) for row in rows]
    attributes: dict[str, Any] = {"profiles": {"data": profiles}}
    if consent == "SUBSCRIBED":
        attributes["custom_source"] = CUSTOM_SOURCE
    data: dict[str, Any] = {"type": job_type, "attributes": attributes}
    if list_id:
        data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return {"data": data}


def _consent_row(consent: str, row: ConsentRow, channel: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {"email": row.email}
    if row.phone:
        attributes["phone_number"] = row.phone
    attributes["subscriptions"] = {channel: {"marketing": {"consent": consent}}}
    if row.birth_date:
        attributes["age_gated_date_of_birth"] = row.birth_date
    resource: dict[str, Any] = {"type": "profile", "attributes": attributes}
    if row.profile_id:
        resource["id"] = row.profile_id
    return resource


def events_job_body(payloads: list[dict[str, Any]]) -> tuple[dict[str, Any], Locator]:
    """Events grouped per profile, and a locator from error pointers back to input positions."""
    groups: dict[str, list[int]] = {}
    for position, payload in enumerate(payloads):
        groups.setdefault(_event_email(payload), []).append(position)
    entries = [_profile_events([payloads[p] for p in positions]) for positions in groups.values()]
    body = {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {"events-bulk-create": {"data": entries}},
        }
    }
    return body, _event_locator(list(groups.values()))


def _profile_events(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """One profile's entry of a bulk create job: its events without their profile."""
    events = [
        {
            "type": "event",
            "attributes": {k: v for k, v in p["data"]["attributes"].items() if k != "profile"},
        }
        for p in payloads
    ]
    profile = payloads[0]["data"]["attributes"]["profile"]
    return {
        "type": "event-bulk-create",
        "attributes": {"profile": profile, "events": {"data": events}},
    }


def _event_email(payload: dict[str, Any]) -> str:
    return str(
        payload["data"]["attributes"]["profile"]["data"]["attributes"].get("email") or ""
    ).lower()


# locators and errors ---------------------------------------------------------------------------
def _event_locator(layout: list[list[int]]) -> Locator:
    def locate(pointer: str) -> list[int]:
        match = EVENT_POINTER.match(pointer)
        if not match or int(match[1]) >= len(layout):
            return []
        positions = layout[int(match[1])]
        if match[2] is not None and int(match[2]) < len(positions):
            return [positions[int(match[2])]]
        return positions

    return locate


def index_locator(pattern: re.Pattern[str]) -> Locator:
    """A locator for bodies whose rows an error pointer names by index (`pattern`'s group 1)."""

    def locate(pointer: str) -> list[int]:
        match = pattern.match(pointer)
        return [int(match[1])] if match else []

    return locate


def error_text(body: Any) -> str:
    """The code, title and detail of each error in a JSON:API error body."""
    errors = body.get("errors") if isinstance(body, dict) else None
    return " ".join(text_of(error) for error in errors or [] if isinstance(error, dict))


def text_of(error: dict[str, Any]) -> str:
    """What the classification patterns read in one error: its code, title and detail."""
    return " ".join(str(error.get(key) or "") for key in ("code", "title", "detail"))


def json_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def first_error(response: requests.Response) -> dict[str, Any]:
    """The first error object of a refusal ({} when it has none)."""
    try:
        errors = response.json().get("errors") or [{}]
    except (ValueError, AttributeError):
        return {}
    return errors[0] if isinstance(errors[0], dict) else {}


# paging ----------------------------------------------------------------------------------------
def pages(http: HttpClient, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every resource of a JSON:API collection."""
    for body in bodies(http, path, params):
        yield from body.get("data") or []


def bodies(http: HttpClient, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each page of a JSON:API collection, following `links.next`."""
    return linked_pages(
        lambda: http.get_json(path, params=params), http.get_json, f"Klaviyo GET {path}"
    )
