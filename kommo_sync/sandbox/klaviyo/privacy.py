"""Klaviyo's data-privacy deletion jobs: `POST /api/data-privacy-deletion-jobs`.

The body names exactly one identifier of a profile (email, phone_number or id); every matching
profile is deleted with its list memberships, consent and suppressions (kept on the profile) and
its events. Klaviyo runs the deletion asynchronously; the sandbox applies it at once and answers
202 without a body, also when nothing matches (the pessimistic reading: no 404 to learn from).
"""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.klaviyo.errors import invalid
from kommo_sync.sandbox.klaviyo.records import Profile
from kommo_sync.sandbox.klaviyo.resources import KlaviyoResources
from kommo_sync.sandbox.klaviyo.rules import IDENTIFIERS
from kommo_sync.sandbox.server import Request, Response

DELETION_JOB = "data-privacy-deletion-job"
PROFILE_IDENTIFIERS = ("email", "phone_number")
POINTER = "/data/attributes/profile/data"


class PrivacyEndpoints(KlaviyoResources):
    """`POST /api/data-privacy-deletion-jobs`."""

    def _request_deletion(self, request: Request) -> Response:
        profile = self._deletion_target(self._data(request, DELETION_JOB))
        if profile is not None:
            self._delete_profile(profile)
        return Response(202)

    def _deletion_target(self, data: dict[str, Any]) -> Profile | None:
        """The profile the body names by its one identifier (400 for none or several)."""
        attributes = data.get("attributes")
        wrapper = attributes.get("profile") if isinstance(attributes, dict) else None
        target = wrapper.get("data") if isinstance(wrapper, dict) else None
        if not isinstance(target, dict) or target.get("type") != "profile":
            raise invalid("'profile' with a profile resource is required.", POINTER)
        fields = target.get("attributes")
        if not isinstance(fields, dict):
            raise invalid("'attributes' is a required field.", f"{POINTER}/attributes")
        named = {k: v for k, v in fields.items() if v is not None}
        named.update({"id": target["id"]} if target.get("id") else {})
        if len(named) != 1 or not all(isinstance(v, str) for v in named.values()):
            raise invalid("Exactly one of 'email', 'phone_number' or 'id' is required.", POINTER)
        if set(named) - {*PROFILE_IDENTIFIERS, "id"}:
            raise invalid(f"'{next(iter(named))}' is not a valid field.", f"{POINTER}/attributes")
        name, value = next(iter(named.items()))
        return self.profiles.get(value) if name == "id" else self.profiles.find(name, value)

    def _delete_profile(self, profile: Profile) -> None:
        for name in IDENTIFIERS:
            self.profiles.set_identifier(profile, name, None)
        self.profiles.by_id.pop(profile.id, None)
        for klaviyo_list in self.lists.values():
            klaviyo_list.members.pop(profile.id, None)
        self.event_log = [event for event in self.event_log if event.profile_id != profile.id]
        self.event_keys = {key for key in self.event_keys if key[1] != profile.id}
