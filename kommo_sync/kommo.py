"""Kommo API v4 client, thin, over HttpClient (its JSON becomes records in kommo_records)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import requests

from kommo_sync.batching import chunks
from kommo_sync.clock import Clock
from kommo_sync.config import KommoConfig
from kommo_sync.errors import ConfigError, FatalError
from kommo_sync.http import HttpClient
from kommo_sync.kommo_oauth import KommoOAuth, kommo_auth
from kommo_sync.kommo_records import (
    FieldMap,
    embedded,
    parse_catalog,
    parse_lead_event,
    parse_lifecycle_event,
)
from kommo_sync.model import Catalog, LeadEvent, LifecycleEvent
from kommo_sync.pacing import MAX_IN_FLIGHT, SlotSchedule
from kommo_sync.paging import numbered_pages
from kommo_sync.pipeline import Prefetch
from kommo_sync.shared_pacing import schedule_for

log = logging.getLogger("kommo_sync.kommo")

PAGE_SIZE = 250
EVENTS_PAGE_SIZE = 100
LIFECYCLE_TYPES = (
    "contact_deleted",
    "contact_restored",
    "lead_deleted",
    "lead_restored",
    "entity_merged",
)


AUTH_HINTS = {
    False: "the long-lived token has expired or was revoked: generate a new one in the "
    "private integration's 'Keys and scopes' tab and update KOMMO_TOKEN",
    True: "Kommo refused a freshly refreshed OAuth access token: check the integration's "
    "access to this account (kommo.oauth.client_id)",
}


def kommo_retry_after(response: requests.Response) -> float | None:
    """Kommo puts the wait in the 429 JSON body as `retry_after`, not in a header."""
    try:
        value = response.json().get("retry_after")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def kommo_http(config: KommoConfig, clock: Clock, timeout: float = 60.0) -> HttpClient:
    """With `kommo.oauth` the OAuth auth sets each request's token; else the long-lived one."""
    oauth = kommo_auth(config, clock, timeout)
    headers = {"Accept": "application/json"}
    if oauth is None:
        headers["Authorization"] = f"Bearer {config.token}"
    return HttpClient(
        base_url=config.base_url,
        vendor="Kommo",
        clock=clock,
        timeout=timeout,
        headers=headers,
        auth=oauth,
        rate_per_second=config.requests_per_second,
        schedule=kommo_schedule(config, clock),
        max_connections=MAX_IN_FLIGHT,  # starts are paced; several answers may be awaited
        retry_after_from_body=kommo_retry_after,
        auth_hint=AUTH_HINTS[oauth is not None],
    )


def kommo_schedule(config: KommoConfig, clock: Clock) -> SlotSchedule:
    """Kommo's pace, shared by every run with the same `kommo.pacing_key`: in the pacing file,
    or, with a Postgres state, in its database (shared across hosts)."""
    return schedule_for(
        config.pacing_key, postgres_url=config.pacing_url, file=config.pacing_file, clock=clock
    )


def iter_pages(
    http: HttpClient, path: str, key: str, params: dict[str, Any], limit: int = PAGE_SIZE
) -> Iterator[list[dict[str, Any]]]:
    """Pages of a Kommo list; ends on 204 (Kommo's empty list), an empty or a short page. Past
    the first page, as many pages are kept in flight as the answer times call for."""

    def fetch(page: int) -> list[dict[str, Any]]:
        body = http.get_json(
            path, params={**params, "limit": limit, "page": page}, allow_empty=True
        )
        return embedded(body, key)

    with Prefetch(fetch, http.pacer.depth, name=path.rsplit("/", 1)[-1]) as ahead:
        yield from numbered_pages(ahead.get, limit, f"Kommo {path}")


class KommoClient:
    def __init__(self, http: HttpClient):
        self.http = http

    def log_in(self) -> None:
        """Get an OAuth access token now if one is due (nothing with a long-lived token): a dry
        run holds the state's write lock from its start, so a token kept in the state could
        not be written during it."""
        if isinstance(self.http.auth, KommoOAuth):
            self.http.auth.current()

    def catalog(self) -> Catalog:
        """Pipelines and statuses. Every Kommo account has a pipeline, so an answer without one
        (empty, 204, not HAL) is a fault: a stage is never guessed from a broken catalog."""
        body = self.http.get_json("/api/v4/leads/pipelines", allow_empty=True)
        try:
            catalog = parse_catalog(body if isinstance(body, dict) else {})
        except (KeyError, TypeError, ValueError, AttributeError):
            catalog = Catalog()
        if not catalog.pipelines or not all(p.statuses for p in catalog.pipelines.values()):
            raise FatalError(
                "Kommo answered GET /api/v4/leads/pipelines without pipelines or statuses; "
                "stages cannot be decided, so the run stopped before the pull (the next run "
                "tries again)"
            )
        return catalog

    def entity_fields(self, entity: str) -> list[dict[str, Any]]:
        """The custom fields of leads or companies (an account may have none: 204)."""
        path = f"/api/v4/{entity}/custom_fields"
        return [
            field for page in iter_pages(self.http, path, "custom_fields", {}) for field in page
        ]

    def timezone(self) -> str | None:
        """The account's timezone (`_embedded.datetime_settings.timezone`), dates' day basis."""
        body = self.http.get_json("/api/v4/account", params={"with": "datetime_settings"})
        settings = ((body or {}).get("_embedded") or {}).get("datetime_settings") or {}
        zone = settings.get("timezone")
        return zone if isinstance(zone, str) and zone else None

    def user_names(self) -> dict[int, str]:
        """Every user's name by id (responsible users), read once a run when a map needs it."""
        pages = iter_pages(self.http, "/api/v4/users", "users", {})
        return {int(user["id"]): str(user.get("name") or "") for page in pages for user in page}

    def loss_reasons(self) -> dict[int, str]:
        body = self.http.get_json("/api/v4/leads/loss_reasons", allow_empty=True)
        reasons = embedded(body, "loss_reasons")
        return {int(reason["id"]): str(reason.get("name") or "") for reason in reasons}

    def custom_fields(self) -> list[dict[str, Any]]:
        """Contact fields; every account has some (EMAIL and PHONE), so none is a fault, not a
        config error."""
        fields: list[dict[str, Any]] = []
        for page in iter_pages(self.http, "/api/v4/contacts/custom_fields", "custom_fields", {}):
            fields.extend(page)
        if not fields:
            raise FatalError(
                "Kommo listed no contact fields on GET /api/v4/contacts/custom_fields (every "
                "account has EMAIL and PHONE); the run stopped (the next run tries again)"
            )
        return fields

    def changed(self, entity: str, since: int, until: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of contacts, leads or companies with updated_at in [since, until], oldest id
        first (contacts with their leads, leads with their contacts)."""
        params: dict[str, Any] = {
            "filter[updated_at][from]": since,
            "filter[updated_at][to]": until,
            "order[id]": "asc",
        }
        links = {"contacts": "leads", "leads": "contacts"}.get(entity)
        if links:
            params["with"] = links
        return iter_pages(self.http, f"/api/v4/{entity}", entity, params)

    def by_ids(self, entity: str, ids: Iterable[int]) -> Iterator[list[dict[str, Any]]]:
        """Contacts, leads or companies by id, 250 ids a request: one page always holds them all."""
        wanted = sorted(set(ids))
        extra = {"contacts": {"with": "leads"}, "leads": {"with": "contacts"}}.get(entity, {})
        for chunk in chunks(wanted, PAGE_SIZE):
            params = {**extra, "filter[id][]": chunk, "limit": PAGE_SIZE, "page": 1}
            items = self._listed(f"/api/v4/{entity}", entity, params) or self._listed(
                f"/api/v4/{entity}", entity, params
            )
            if items:
                yield items

    def _listed(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """One list request; an empty answer (204) is asked for once more by callers that expect
        items."""
        return embedded(self.http.get_json(path, params=params, allow_empty=True), key)

    def lead_events(self, since: int, until: int) -> Iterator[list[LeadEvent]]:
        """Leads added and moved in (since, until], a page at a time."""
        params = {
            "filter[type]": "lead_added,lead_status_changed",
            "filter[entity][]": "lead",
            "filter[created_at][from]": since,
            "filter[created_at][to]": until,
        }
        pages = iter_pages(self.http, "/api/v4/events", "events", params, limit=EVENTS_PAGE_SIZE)
        for page in pages:
            yield [parse_lead_event(raw) for raw in page]

    def lifecycle_events(self, since: int, until: int) -> Iterator[list[LifecycleEvent]]:
        """Contacts and leads deleted, restored or merged in (since, until], a page at a time."""
        params = {
            "filter[type]": ",".join(LIFECYCLE_TYPES),
            "filter[created_at][from]": since,
            "filter[created_at][to]": until,
        }
        pages = iter_pages(self.http, "/api/v4/events", "events", params, limit=EVENTS_PAGE_SIZE)
        for page in pages:
            yield [parse_lifecycle_event(raw) for raw in page]

    def search_contacts(self, email: str) -> Iterator[list[dict[str, Any]]]:
        """Contacts whose fields match `email` (Kommo's full-text search; callers re-check)."""
        return iter_pages(self.http, "/api/v4/contacts", "contacts", {"query": email})

    def add_notes(self, entity: str, notes: list[tuple[int, str]]) -> list[dict[str, Any]]:
        """Common notes `(entity id, text)` in one batch request, each with its index as
        `request_id` (what Kommo's validation errors name); returns Kommo's `_embedded.notes`."""
        bodies = [
            _note_body(index, entity_id, text) for index, (entity_id, text) in enumerate(notes)
        ]
        body = self.http.request(
            "POST", f"/api/v4/{entity}/notes", json=bodies, repeatable=False, need_body=True
        ).json()
        return embedded(body, "notes")

    def note_texts(self, entity: str, entity_ids: Iterable[int]) -> set[tuple[int, str]]:
        """`(entity id, text)` of the existing common notes of these entities (to settle a note
        whose outcome a crash left unknown)."""
        ids = sorted(set(entity_ids))
        found: set[tuple[int, str]] = set()
        for chunk in chunks(ids, PAGE_SIZE):
            params = {"filter[entity_id][]": chunk, "filter[note_type]": "common"}
            for page in iter_pages(self.http, f"/api/v4/{entity}/notes", "notes", params):
                found |= {(int(n["entity_id"]), _note_text(n)) for n in page}
        return found

    def clear_checkbox(self, contact_ids: list[int], field_id: int) -> None:
        """Uncheck one checkbox field on many contacts, 250 a request."""
        for chunk in chunks(contact_ids, PAGE_SIZE):
            body = [
                {
                    "id": cid,
                    "custom_fields_values": [{"field_id": field_id, "values": [{"value": False}]}],
                }
                for cid in chunk
            ]
            self.http.request("PATCH", "/api/v4/contacts", json=body)


def _note_text(note: dict[str, Any]) -> str:
    return str((note.get("params") or {}).get("text") or "")


def _note_body(index: int, entity_id: int, text: str) -> dict[str, Any]:
    return {
        "entity_id": entity_id,
        "note_type": "common",
        "params": {"text": text},
        "request_id": str(index),
        "is_need_to_trigger_digital_pipeline": False,
    }


def kommo_refused_items(body: Any) -> dict[str, str]:
    """The items a Kommo 400 names (`validation-errors`: request_id → the first error's words)."""
    items = (body or {}).get("validation-errors") if isinstance(body, dict) else None
    named: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("request_id") is not None:
            errors = [e for e in item.get("errors") or [] if isinstance(e, dict)]
            words = "; ".join(
                f"{e.get('path') or 'item'}: {e.get('detail') or e.get('code')}" for e in errors
            )
            named[str(item["request_id"])] = words or "refused by Kommo"
    return named


def resolve_fields(config: KommoConfig, fields: list[dict[str, Any]]) -> FieldMap:
    """Find the configured consent and lead-source fields; a missing one is a config error."""
    return FieldMap(
        consent_id=_find_field(
            fields, config.consent_field, "kommo.consent_field", want_type="checkbox"
        ),
        lead_source_id=_find_field(fields, config.lead_source_field, "kommo.lead_source_field"),
    )


def _find_field(
    fields: list[dict[str, Any]], wanted: str | int | None, key: str, want_type: str | None = None
) -> int | None:
    if wanted is None:
        return None
    for field in fields:
        if field.get("id") == wanted or (isinstance(wanted, str) and field.get("name") == wanted):
            if want_type and field.get("type") != want_type:
                raise ConfigError(
                    key, f"Kommo field {wanted!r} is a {field.get('type')} field, not a {want_type}"
                )
            return int(field["id"])
    names = ", ".join(sorted(str(f.get("name")) for f in fields if not f.get("code")))[:400]
    raise ConfigError(
        key, f"no contact field {wanted!r} in this Kommo account (custom fields: {names})"
    )
