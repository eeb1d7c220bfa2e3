"""A deleted contact's exit from the audience (`mailchimp.on_delete`), one request a person.

`archive` is `DELETE` on the member: reversible, a later upsert (PUT) brings the member back,
unsubscribed if it was; `unsubscribe` PATCHes its status; `keep` leaves it as it is. Only a
member this tool pushed is touched; a member already gone (404), or one Mailchimp will not
archive (405: bounced, pending, archived already), is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kommo_sync.destinations.mailchimp.api import AudienceApi, Result, failed
from kommo_sync.destinations.mailchimp.mapping import ABSENT, ARCHIVED, NAME
from kommo_sync.destinations.mailchimp.operations import UNSUBSCRIBED
from kommo_sync.errors import RecordRejected, RetryLater
from kommo_sync.plan import STATUS, Change

GONE = (ABSENT, ARCHIVED)
CANNOT_ARCHIVE = 405  # "Can not archive a contact that is bounced, pending or archived": no-op


@dataclass(frozen=True)
class Exit:
    """The member leaves: archived (`DELETE`) or unsubscribed (`PATCH`)."""

    member_hash: str
    archive: bool


def exit_change(person_id: int, record: dict[str, Any], on_delete: str) -> Change | None:
    """The exit a pushed member needs; None when `keep`, or when it is made already. An archived
    record keeps no fingerprint: a restored contact is planned again and upserted back."""
    status = record.get(STATUS)
    if on_delete == "keep" or not record.get("hash") or status in GONE:
        return None
    if on_delete == "unsubscribe" and status == UNSUBSCRIBED:
        return None
    archive = on_delete == "archive"
    after = {k: v for k, v in record.items() if k != "fingerprint"} if archive else dict(record)
    after[STATUS] = ARCHIVED if archive else UNSUBSCRIBED
    fingerprint = "" if archive else str(record.get("fingerprint") or "")
    action = "exit_archive" if archive else "exit_unsubscribe"
    email = record.get("email")
    payload = Exit(str(record["hash"]), archive)
    return Change(
        NAME, person_id, email, action, fingerprint, after, {}, payload, opts_out=not archive
    )


TOMBSTONE_KEYS = frozenset({"email", "hash", "tag", "consent", STATUS, "fingerprint"})


def tombstone(record: dict[str, Any]) -> dict[str, Any]:
    """A departed contact's member record without its merge fields (names, company…)."""
    return {key: value for key, value in record.items() if key in TOMBSTONE_KEYS}


def is_exit(change: Change) -> bool:
    return isinstance(change.payload, Exit)


def push_exits(api: AudienceApi, changes: list[Change]) -> dict[int, Result]:
    """Each exit by its own request (deletions are few); a member not there is done."""
    return {change.person_id: _push_exit(api, change) for change in changes}


def _push_exit(api: AudienceApi, change: Change) -> Result:
    assert isinstance(change.payload, Exit)
    path = api.member_path(change.payload.member_hash)
    try:
        if change.payload.archive:
            api.http.request("DELETE", path, allow=(404, CANNOT_ARCHIVE))
        else:
            api.http.request("PATCH", path, json={"status": UNSUBSCRIBED}, allow=(404,))
    except (RecordRejected, RetryLater) as exc:
        return failed(exc, attributed=True)
    return Result(True)
