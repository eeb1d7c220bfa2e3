"""Erasing a person in Klaviyo (`forget`): one data-privacy deletion job per identifier.

Klaviyo deletes every profile matching the email (or phone number) with its list memberships and
events, asynchronously; a 202 is its confirmation that the request is taken. An identifier that
matches no profile is done too, so the call is safe to repeat.
"""

from __future__ import annotations

from typing import Any

from kommo_sync.http import HttpClient

DELETION_JOBS = "/api/data-privacy-deletion-jobs"


def deletion_body(identifier: str, value: str) -> dict[str, Any]:
    """The JSON:API body naming one identifier (Klaviyo refuses more than one)."""
    profile = {"type": "profile", "attributes": {identifier: value}}
    return {
        "data": {
            "type": "data-privacy-deletion-job",
            "attributes": {"profile": {"data": profile}},
        }
    }


def erase_profiles(http: HttpClient, emails: list[str], phones: list[str]) -> str:
    """Request the deletion of each identifier's profiles; what was done, without addresses."""
    asked = [("email", e) for e in emails] + [("phone_number", p) for p in phones]
    for identifier, value in asked:
        http.request("POST", DELETION_JOBS, json=deletion_body(identifier, value), allow=(404,))
    return (
        f"deletion of the profiles of {len(emails)} email(s) and {len(phones)} phone number(s) "
        "requested (Klaviyo deletes them with their list memberships and events)"
    )
