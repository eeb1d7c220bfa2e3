"""A deleted contact's exit from Klaviyo (`klaviyo.on_delete`).

`remove_from_lists` takes the profile out of the lists this tool manages (`list_id` and the
`lists_by_stage` lists), by the list relationship calls the push uses; `suppress` unsubscribes it
from email marketing by Bulk Unsubscribe; `keep` leaves it as it is. Only a profile this tool
pushed is touched; the profile itself stays (erasing is `forget`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kommo_sync.batching import chunks
from kommo_sync.destinations.klaviyo.api import (
    LIST_POINTER,
    index_locator,
    list_body,
)
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.destinations.klaviyo.mapping import NAME
from kommo_sync.destinations.klaviyo.profiles import Result, Results, apply
from kommo_sync.destinations.klaviyo.push import (
    LIST_CHANGE_SIZE,
    UNSUBSCRIBE_SIZE,
    bulk_unsubscribe,
)
from kommo_sync.destinations.klaviyo.sending import Request, send
from kommo_sync.http import HttpClient
from kommo_sync.model import FeedbackKind
from kommo_sync.plan import STATUS, Change, Outcome

EXITED = "exited"  # a pushed record's mark: the profile left the managed lists on delete
UNSUBSCRIBED = FeedbackKind.UNSUBSCRIBED.value


@dataclass(frozen=True)
class Exit:
    """The profile leaves `lists`, or (`suppress`) email marketing."""

    profile_id: str | None
    lists: tuple[str, ...] = ()
    suppress: bool = False


def managed_lists(config: KlaviyoConfig) -> tuple[str, ...]:
    return tuple(sorted({config.list_id, *config.lists_by_stage.values()}))


def exit_change(person_id: int, record: dict[str, Any], config: KlaviyoConfig) -> Change | None:
    """The exit a pushed profile needs; None when `keep`, or when it is made already. A record
    out of the lists keeps no fingerprint: a restored contact is planned again, lists and all."""
    on_delete, email = config.on_delete, record.get("email")
    if on_delete == "keep" or not email or record.get(EXITED):
        return None
    profile_id = record.get("profile_id")
    if on_delete == "suppress":
        if record.get(STATUS) == UNSUBSCRIBED:
            return None
        after = {**record, STATUS: UNSUBSCRIBED}
        payload = Exit(profile_id, suppress=True)
        fingerprint = str(record.get("fingerprint") or "")
        return Change(
            NAME, person_id, email, "exit_suppress", fingerprint, after, {}, payload, True
        )
    after = {k: v for k, v in record.items() if k != "fingerprint"}
    after.update({"lists": [], EXITED: True})
    payload = Exit(profile_id, lists=managed_lists(config))
    return Change(NAME, person_id, email, "exit_remove_from_lists", "", after, {}, payload)


TOMBSTONE_KEYS = frozenset(
    {"email", "profile_id", "lists", "consent", "subscribe", STATUS, EXITED, "fingerprint"}
)


def tombstone(record: dict[str, Any]) -> dict[str, Any]:
    """A departed contact's profile record without its attributes and properties."""
    return {key: value for key, value in record.items() if key in TOMBSTONE_KEYS}


def is_exit(change: Change) -> bool:
    return isinstance(change.payload, Exit)


def push_exits(http: HttpClient, changes: list[Change]) -> list[Outcome]:
    """List removals by list (≤ 1,000 profiles a call), suppressions by Bulk Unsubscribe."""
    results: Results = {c.person_id: Result(profile_id=_exit(c).profile_id) for c in changes}
    removals = [c for c in changes if not _exit(c).suppress]
    for change in removals:
        if not results[change.person_id].profile_id:
            results[change.person_id].profile_id = _profile_id(http, change.email or "")
    for list_id in sorted({list_id for c in removals for list_id in _exit(c).lists}):
        members = [
            c for c in removals if list_id in _exit(c).lists and results[c.person_id].profile_id
        ]
        for chunk in chunks(members, LIST_CHANGE_SIZE):
            _remove_from_list(http, list_id, chunk, results)
    for chunk in chunks([c for c in changes if _exit(c).suppress], UNSUBSCRIBE_SIZE):
        bulk_unsubscribe(http, chunk, results)
    return [_outcome(change, results[change.person_id]) for change in changes]


def _exit(change: Change) -> Exit:
    assert isinstance(change.payload, Exit)
    return change.payload


def _profile_id(http: HttpClient, email: str) -> str | None:
    """A profile pushed by a bulk import whose id was never read: found by its email."""
    quoted = email.replace('"', '\\"')
    params = {"filter": f'equals(email,"{quoted}")', "fields[profile]": "email"}
    found = (http.get_json("/api/profiles", params=params) or {}).get("data") or []
    return str(found[0]["id"]) if found else None


def _remove_from_list(
    http: HttpClient, list_id: str, chunk: list[Change], results: Results
) -> None:
    sent = send(
        http,
        Request("DELETE", f"/api/lists/{list_id}/relationships/profiles"),
        chunk,
        lambda part: (
            list_body([results[c.person_id].profile_id for c in part]),
            index_locator(LIST_POINTER),
        ),
    )
    apply(chunk, sent, results)


def _outcome(change: Change, result: Result) -> Outcome:
    if result.failure:
        return Outcome(change, False, result.failure.permanent, result.failure.reason)
    return Outcome(change, True, record_updates={"profile_id": result.profile_id})
