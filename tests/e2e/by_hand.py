"""A marketer's edits made by hand in the vendors, through their real API calls on the sandboxes:
what `reconcile` must find and repair."""

from __future__ import annotations

from typing import Any

import requests

from kommo_sync.sandbox.mailchimp.rules import subscriber_hash
from tests.conftest import KLAVIYO_KEY, MAILCHIMP_KEY, World


def _mailchimp(world: World, method: str, email: str, tail: str = "", body: Any = None) -> None:
    url = f"{world.servers[1].url}/3.0/lists/{world.list_id}/members/{subscriber_hash(email)}"
    response = requests.request(
        method, url + tail, json=body, auth=("someone", MAILCHIMP_KEY), timeout=10
    )
    response.raise_for_status()


def archive_member(world: World, email: str) -> None:
    _mailchimp(world, "DELETE", email)


def remove_tag(world: World, email: str, tag: str) -> None:
    _mailchimp(world, "POST", email, "/tags", {"tags": [{"name": tag, "status": "inactive"}]})


def add_tag(world: World, email: str, tag: str) -> None:
    _mailchimp(world, "POST", email, "/tags", {"tags": [{"name": tag, "status": "active"}]})


def edit_merge_fields(world: World, email: str, **values: str) -> None:
    _mailchimp(world, "PATCH", email, body={"merge_fields": values})


def _klaviyo(world: World, method: str, path: str, body: Any) -> None:
    headers = {
        "Authorization": f"Klaviyo-API-Key {KLAVIYO_KEY}",
        "revision": "2026-07-15",
        "Content-Type": "application/vnd.api+json",
        "Accept": "application/vnd.api+json",
    }
    url = world.servers[2].url + path
    requests.request(method, url, json=body, headers=headers, timeout=10).raise_for_status()


def profile_id(world: World, email: str) -> str:
    profile = world.klaviyo.profile_by_email(email)
    assert profile is not None, f"no Klaviyo profile for {email}"
    return str(profile["id"])


def drop_from_list(world: World, list_id: str, email: str) -> None:
    body = {"data": [{"type": "profile", "id": profile_id(world, email)}]}
    _klaviyo(world, "DELETE", f"/api/lists/{list_id}/relationships/profiles", body)


def edit_properties(world: World, email: str, **properties: Any) -> None:
    """`POST /api/profile-import` (create or update) with new property values."""
    body = {"data": {"type": "profile", "attributes": {"email": email, "properties": properties}}}
    _klaviyo(world, "POST", "/api/profile-import", body)
