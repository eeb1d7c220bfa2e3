"""The Mailchimp operations a plan holds in `Change.payload`, one frozen type per kind of write.

The plan decides what each person needs; the push only reads these fields and sends them. A
member operation carries its stage tag move, if any, because both settle one person's outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kommo_sync.plan import Change

UNSUBSCRIBED = "unsubscribed"  # Mailchimp's member status, sent when consent is withdrawn


@dataclass(frozen=True)
class TagChange:
    """The member's managed stage tag becomes `tag`. `was` is the managed tag pushed before;
    None when unknown (a first push): then any managed tag may be on the member and comes off."""

    tag: str
    was: str | None = None

    def may_carry(self, name: str) -> bool:
        """Whether the member may carry this managed tag now, so a tag move must remove it."""
        return self.was is None or name == self.was


@dataclass(frozen=True)
class KommoTagMove:
    """The member's Kommo tags (`mailchimp.kommo_tags`, prefixed) to add and to remove; only
    tags this tool manages are ever named here, so a marketer's own tags stay."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subscribe:
    """Someone never pushed, who may be subscribed: a PUT (or batch subscribe) with
    `status_if_new`, so a member already in the audience keeps the status it has."""

    member_hash: str
    email: str
    merge_fields: Mapping[str, Any]
    status_if_new: str
    tag: TagChange
    kommo: KommoTagMove | None = None

    def body(self) -> dict[str, Any]:
        return {
            "email_address": self.email,
            "merge_fields": dict(self.merge_fields),
            "status_if_new": self.status_if_new,
        }


@dataclass(frozen=True)
class UpdateIfMember:
    """Someone never pushed and not to be subscribed: a PATCH, so only a member already in the
    audience gets the fields (a 404 answer: not a member, and kept out)."""

    member_hash: str
    email: str
    merge_fields: Mapping[str, Any]
    tag: TagChange
    kommo: KommoTagMove | None = None

    def body(self) -> dict[str, Any]:
        return {"email_address": self.email, "merge_fields": dict(self.merge_fields)}


@dataclass(frozen=True)
class Update:
    """A member pushed before, PATCHed with only what changed: `merge_fields` (None: unchanged),
    `new_email` (a rename), `unsubscribe` (consent withdrawn). An empty body sends no member
    request at all, only the tag move."""

    member_hash: str
    merge_fields: Mapping[str, Any] | None = None
    new_email: str | None = None
    unsubscribe: bool = False
    tag: TagChange | None = None
    kommo: KommoTagMove | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.merge_fields is not None:
            body["merge_fields"] = dict(self.merge_fields)
        if self.new_email is not None:
            body["email_address"] = self.new_email
        if self.unsubscribe:
            body["status"] = UNSUBSCRIBED
        return body


MemberOperation = Subscribe | UpdateIfMember | Update


def operation_of(change: Change) -> MemberOperation:
    """The Mailchimp operation a change of this destination carries."""
    payload = change.payload
    if not isinstance(payload, Subscribe | UpdateIfMember | Update):
        raise TypeError(f"change {change.action!r} of person {change.person_id} is not Mailchimp's")
    return payload


def moves_tags(operation: MemberOperation) -> bool:
    """Whether the operation moves a managed tag: the stage tag or a Kommo tag."""
    return operation.tag is not None or operation.kommo is not None


def method_of(operation: MemberOperation) -> str:
    """PUT creates or updates by address; PATCH only ever touches an existing member."""
    return "PUT" if isinstance(operation, Subscribe) else "PATCH"
