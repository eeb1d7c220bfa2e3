"""One profile at a time through `POST /api/profile-import`, and what a push learns per person.

A 409 on a shared phone is retried without the phone; another profile is taken over only when
its email is ours, so two people never merge. A 404 on our stored profile id means the profile
is gone (upsert by email again) or the new email belongs to another profile (rejected).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import requests

from kommo_sync.destinations.klaviyo.api import first_error, text_of
from kommo_sync.destinations.klaviyo.operations import ProfileRow, sync_of
from kommo_sync.destinations.klaviyo.sending import Failure, RowRefused, Sent, failure_of
from kommo_sync.errors import RequestRefused, RetryLater
from kommo_sync.http import HttpClient, describe_error
from kommo_sync.plan import Change


@dataclass
class Result:
    """What happened to one person's profile during a push. Each is touched by one thread at
    a time: a person's change is in one request of each step."""

    profile_id: str | None = None
    marketing: dict[str, Any] | None = None
    sms_marketing: dict[str, Any] | None = None
    joined: tuple[str, ...] = ()
    failure: Failure | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def fail(self, failure: Failure) -> None:
        self.failure = self.failure or failure

    def take(self, profile: dict[str, Any]) -> None:
        """The profile Klaviyo answered with: its id and, when read, its email and SMS
        consent."""
        self.profile_id = profile["id"]
        subscriptions = (profile.get("attributes") or {}).get("subscriptions") or {}
        self.marketing = (subscriptions.get("email") or {}).get("marketing")
        self.sms_marketing = (subscriptions.get("sms") or {}).get("marketing")


Results = dict[int, Result]
"""By person id."""


def apply(chunk: list[Change], sent: Sent, results: Results) -> None:
    """The failures of a request for `chunk` onto its people's results."""
    for index, failure in sent.failures.items():
        results[chunk[index].person_id].fail(failure)


class SingleImports:
    """Profiles imported one request each (few changes, or conflicts a bulk job reported)."""

    def __init__(self, http: HttpClient):
        self.http = http

    def with_known_ids(self, changes: list[Change]) -> list[Change]:
        """A renamed person whose profile id we never read is found by the old email first, so
        the email change updates that profile instead of creating a second one."""
        return [
            self._with_id(c)
            if c.summary.get("renamed_from") and not sync_of(c).row.profile_id
            else c
            for c in changes
        ]

    def _with_id(self, change: Change) -> Change:
        old = str(change.summary["renamed_from"]).replace('"', '\\"')
        body = self.http.get_json(
            "/api/profiles", params={"filter": f'equals(email,"{old}")', "fields[profile]": "email"}
        )
        found = (body or {}).get("data") or []
        if not found:
            return change
        return replace(change, payload=sync_of(change).with_id(found[0]["id"]))

    def import_one(self, change: Change, result: Result) -> None:
        try:
            self._import_row(change, sync_of(change).row, result)
        except RowRefused as exc:
            result.fail(exc.failure)
        except (RequestRefused, RetryLater) as exc:
            result.fail(failure_of(exc))

    def _import_row(self, change: Change, row: ProfileRow, result: Result) -> None:
        response = self._profile_import(row)
        if response.status_code == 404 and row.profile_id:
            self._import_without_stale_id(change, row, response, result)
        elif response.status_code == 409:
            self._import_despite_conflict(change, row, response, result)
        else:
            result.take(response.json()["data"])

    def _profile_import(self, row: ProfileRow) -> requests.Response:
        try:
            return self.http.request(
                "POST",
                "/api/profile-import",
                json={"data": row.resource()},
                allow=(404, 409),
                params={"additional-fields[profile]": "subscriptions"},
                need_body=True,
            )
        except RequestRefused as exc:
            raise RowRefused(failure_of(exc, attributed=True)) from None

    def _import_without_stale_id(
        self, change: Change, row: ProfileRow, response: requests.Response, result: Result
    ) -> None:
        """404 on our stored id: the profile is gone (upsert by email), or the new email is
        taken."""
        if self.profile(row.profile_id or "") is None:
            self._import_row(change, row.with_id(None), result)
            return
        error = first_error(response)
        reason = (
            f"{error.get('detail') or 'not found'} "
            f"(the new email {change.email} belongs to another Klaviyo profile)"
        )
        result.fail(Failure.judged(404, reason, True, text_of(error)))

    def _import_despite_conflict(
        self, change: Change, row: ProfileRow, response: requests.Response, result: Result
    ) -> None:
        """409 duplicate_profile: a shared phone is left out; another profile is taken over only
        when its email is ours, so two people never merge."""
        if row.phone:
            row = row.without_phone()
            response = self._profile_import(row)
            result.notes["phone_withheld"] = True
            if response.status_code < 300:
                result.take(response.json()["data"])
                return
        error = first_error(response)
        duplicate = (error.get("meta") or {}).get("duplicate_profile_id")
        owner = self.profile(duplicate) if duplicate and response.status_code == 409 else None
        if owner and str(owner.get("email") or "").lower() == (change.email or "").lower():
            retry = self._profile_import(row.with_id(duplicate))
            if retry.status_code < 300:
                result.take(retry.json()["data"])
                return
            error = first_error(retry)
        reason = (
            f"{error.get('code', 'conflict')}: {error.get('detail') or describe_error(response)}"
        )
        if duplicate:
            reason += f" (Klaviyo profile {duplicate})"
        result.fail(Failure.judged(response.status_code, reason, True, text_of(error)))

    def profile(self, profile_id: str) -> dict[str, Any] | None:
        """A profile's attributes; None when Klaviyo has no such profile."""
        response = self.http.request(
            "GET", f"/api/profiles/{profile_id}", allow=(404,), need_body=True
        )
        return None if response.status_code == 404 else response.json()["data"]["attributes"]
