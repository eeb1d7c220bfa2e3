"""Reconcile for Klaviyo: the profiles of each managed list read back and compared with what was
pushed.

Each managed list (`list_id` and the `lists_by_stage` lists) is paged 100 profiles a request
(`GET /api/lists/{id}/profiles`, the most `page[size]` allows) with the attributes and
properties this tool sets and the email subscriptions. A pushed person missing from a list its
record names is `not_in_list`; the attributes and properties it was pushed with are compared
where the profile was seen; an email-marketing unsubscribe or suppression the state does not
know of is reported as the feedback read would report it. The comparison (`compare`) is pure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from kommo_sync.clock import epoch_of
from kommo_sync.destinations.base import Drift, DriftFound, DriftKind
from kommo_sync.destinations.klaviyo.api import PAGE_SIZE
from kommo_sync.destinations.klaviyo.feedback import suppression_feedback
from kommo_sync.destinations.klaviyo.mapping import NAME
from kommo_sync.http import HttpClient
from kommo_sync.model import Feedback, FeedbackKind
from kommo_sync.paging import linked_pages
from kommo_sync.plan import STATUS

PROFILE_FIELDS = "email,first_name,last_name,organization,phone_number,properties,subscriptions"
OPTED_OUT = (FeedbackKind.UNSUBSCRIBED.value, FeedbackKind.CLEANED.value)
ALWAYS = 2**62  # a suppression of any time is reported (the stage decides what is news)


def reconcile_cost(people: int, lists: int) -> int:
    """Pages of `lists` managed lists: everyone is in `list_id`; the stage lists share the
    people between them (a partial last page each)."""
    pages = max(1, -(-people // PAGE_SIZE))
    return pages + (pages + lists - 1 if lists > 1 else 0)


def compare(
    pushed: Mapping[int, dict[str, Any]],
    profiles: Mapping[str, dict[str, Any]],
    members: Mapping[str, Collection[str]],
) -> DriftFound:
    """Each pushed person against the profiles read back; `members`: profile ids by list."""
    by_email = {_email(p): pid for pid, p in profiles.items() if _email(p)}
    found = DriftFound()
    for pid, record in sorted(pushed.items()):
        email = str(record.get("email") or "").lower()
        profile = profiles.get(str(record.get("profile_id"))) or profiles.get(
            by_email.get(email, "")
        )
        for list_id in sorted(set(record.get("lists") or []) & set(members)):
            if profile is None or profile["id"] not in members[list_id]:
                found.drift.append(Drift(pid, DriftKind.NOT_IN_LIST, list_id))
        if profile is not None:
            found.drift += profile_drift(pid, record, profile)
            found.unsubscribes += unsubscribes(record, profile)
    return found


def profile_drift(pid: int, record: dict[str, Any], profile: dict[str, Any]) -> list[Drift]:
    """Fields that differ, and an opt-out the state does not know of, of one profile."""
    drift: list[Drift] = []
    if unsubscribes(record, profile):
        drift.append(Drift(pid, DriftKind.UNSUBSCRIBED, "email marketing in Klaviyo"))
    fields = wrong_fields(record, profile.get("attributes") or {})
    if fields:
        drift.append(Drift(pid, DriftKind.WRONG_FIELD, ", ".join(fields)))
    return drift


def wrong_fields(record: dict[str, Any], held: dict[str, Any]) -> list[str]:
    """Attributes and properties pushed with a value that the profile holds otherwise (those
    pushed empty are not compared: a push never sets them)."""
    properties = held.get("properties") or {}
    wrong = [
        name
        for name, value in (record.get("attributes") or {}).items()
        if value is not None and held.get(name) != value
    ]
    wrong += [
        name
        for name, value in (record.get("properties") or {}).items()
        if value is not None and properties.get(name) != value
    ]
    return sorted(wrong)


def unsubscribes(record: dict[str, Any], profile: dict[str, Any]) -> list[Feedback]:
    """The profile's email-marketing opt-outs as feedback, unless the state knows of one."""
    if record.get(STATUS) in OPTED_OUT:
        return []
    found = list(suppression_feedback(profile, 0, ALWAYS))
    marketing = _marketing(profile)
    if not found and marketing.get("consent") == "UNSUBSCRIBED":
        at = _epoch(marketing.get("consent_timestamp"))
        key = f"{NAME}:UNSUBSCRIBE:{profile['id']}:{at}"
        place = "Klaviyo email marketing"
        found.append(Feedback(NAME, FeedbackKind.UNSUBSCRIBED, _email(profile), at, place, key))
    return found


def _marketing(profile: dict[str, Any]) -> dict[str, Any]:
    subscriptions = (profile.get("attributes") or {}).get("subscriptions") or {}
    return (subscriptions.get("email") or {}).get("marketing") or {}


def _email(profile: dict[str, Any]) -> str:
    return str((profile.get("attributes") or {}).get("email") or "").lower()


def _epoch(moment: Any) -> int:
    return epoch_of(moment) if moment else 0


# the read ----------------------------------------------------------------------------------------
class ListReader:
    """The paged reads of one reconcile, counting every request they make."""

    def __init__(self, http: HttpClient):
        self.http, self.requests = http, 0

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        self.requests += 1
        return self.http.get_json(path, params=params)

    def profiles(self, list_id: str) -> Iterator[dict[str, Any]]:
        """Every profile of the list, with what is compared."""
        path = f"/api/lists/{list_id}/profiles"
        params = {
            "page[size]": PAGE_SIZE,
            "additional-fields[profile]": "subscriptions",
            "fields[profile]": PROFILE_FIELDS,
        }
        pages = linked_pages(lambda: self.get(path, params), self.get, f"Klaviyo GET {path}")
        for body in pages:
            yield from body.get("data") or []


def read_drift(
    http: HttpClient, pushed: Mapping[int, dict[str, Any]], lists: Collection[str]
) -> DriftFound:
    """Read the managed lists, keeping the profiles of the people pushed, and compare."""
    reader = ListReader(http)
    wanted_ids = {str(r["profile_id"]) for r in pushed.values() if r.get("profile_id")}
    wanted_emails = {str(r.get("email") or "").lower() for r in pushed.values()}
    profiles: dict[str, dict[str, Any]] = {}
    members: dict[str, set[str]] = {}
    for list_id in sorted(lists):
        members[list_id] = set()
        for profile in reader.profiles(list_id):
            if profile["id"] in wanted_ids or _email(profile) in wanted_emails:
                profiles[profile["id"]] = profile
                members[list_id].add(profile["id"])
    found = compare(pushed, profiles, members)
    found.requests = reader.requests
    return found
