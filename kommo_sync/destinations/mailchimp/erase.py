"""Erasing a person in Mailchimp (`forget`): delete-permanent on each address's member.

Mailchimp then refuses the address for good ("Forgotten Email Not Subscribed") until the person
subscribes again through a Mailchimp form. A member that is not there (never pushed, or erased by
an earlier try) is done: the call is safe to repeat.
"""

from __future__ import annotations

from kommo_sync.destinations.mailchimp.api import AudienceApi
from kommo_sync.destinations.mailchimp.mapping import subscriber_hash


def erase_members(api: AudienceApi, emails: list[str]) -> str:
    """Delete each address's member permanently; what was done, in words without addresses."""
    api.get(api.list_path, {"fields": "id"})  # a 404 below then means "no such member"
    erased = 0
    for email in emails:
        path = f"{api.member_path(subscriber_hash(email))}/actions/delete-permanent"
        response = api.http.request("POST", path, allow=(404,))
        erased += response.status_code != 404
    absent = len(emails) - erased
    words = f"{erased} member(s) deleted permanently from audience {api.list_id}"
    return words + (f"; {absent} not in the audience" if absent else "")
