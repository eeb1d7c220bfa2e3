"""The Klaviyo operations a profile change holds in `Change.payload`, one frozen type per write.

The plan decides what each person needs; the push only reads these fields and sends them. A deal
event's payload stays the `POST /api/events` body (a dict): the state stores it as it is and
sends it again from there when a crash left its outcome unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from kommo_sync.plan import Change

PHONE = "phone_number"


@dataclass(frozen=True)
class ProfileRow:
    """One profile as `POST /api/profile-import` and bulk import jobs take it: the known
    `attributes` (a null clears one pushed before), the known custom `properties`, the
    properties to `unset`, and the profile id when we know it."""

    email: str
    attributes: Mapping[str, str | None]
    properties: Mapping[str, Any]
    unset: tuple[str, ...] = ()
    profile_id: str | None = None

    @property
    def phone(self) -> str | None:
        return self.attributes.get(PHONE)

    def without_phone(self) -> ProfileRow:
        """The row with its phone left out (a phone Klaviyo holds for another profile)."""
        attributes = {k: v for k, v in self.attributes.items() if k != PHONE}
        return replace(self, attributes=attributes)

    def with_id(self, profile_id: str | None) -> ProfileRow:
        """The row aimed at `profile_id` (None: upserted by email)."""
        return replace(self, profile_id=profile_id)

    def resource(self) -> dict[str, Any]:
        """The JSON:API profile resource."""
        attributes: dict[str, Any] = {"email": self.email, **self.attributes}
        if self.properties:
            attributes["properties"] = dict(self.properties)
        row: dict[str, Any] = {"type": "profile", "attributes": attributes}
        if self.profile_id:
            row["id"] = self.profile_id
        if self.unset:
            row["meta"] = {"patch_properties": {"unset": list(self.unset)}}
        return row


@dataclass(frozen=True)
class ListMoves:
    """Lists the profile joins and leaves (only lists we joined are ever left)."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProfileSync:
    """One person's profile change: the import row, then the list moves and the consent calls
    (Bulk Subscribe for `subscribe`, Bulk Unsubscribe for `unsubscribe`, the same for SMS
    marketing with the row's phone, `birth_date` going with an age-gated SMS subscription) for
    the profile the row lands on."""

    row: ProfileRow
    lists: ListMoves
    subscribe: bool = False
    unsubscribe: bool = False
    sms_subscribe: bool = False
    sms_unsubscribe: bool = False
    birth_date: str | None = None

    def without_phone(self) -> ProfileSync:
        return replace(self, row=self.row.without_phone())

    def with_id(self, profile_id: str | None) -> ProfileSync:
        return replace(self, row=self.row.with_id(profile_id))


def sync_of(change: Change) -> ProfileSync:
    """A profile change's operation, typed (a payload of any other kind is a bug)."""
    if not isinstance(change.payload, ProfileSync):
        raise TypeError(f"not a Klaviyo profile operation: {type(change.payload).__name__}")
    return change.payload
