"""Mailchimp's batch subscribe: `POST /lists/{list_id}` with up to 500 members."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.mailchimp.errors import ApiError, contact_exists_text, field_error, invalid
from kommo_sync.sandbox.mailchimp.members import MemberState
from kommo_sync.sandbox.mailchimp.queries import check_status_value, flag, json_object
from kommo_sync.sandbox.mailchimp.records import Audience
from kommo_sync.sandbox.mailchimp.rules import (
    BATCH_ITEM_STATUSES,
    BULK_LIMIT,
    JSON_CONTENT_TYPE,
    subscriber_hash,
)
from kommo_sync.sandbox.server import Request, Response


class BulkSubscribe(MemberState):
    """`POST /lists/{list_id}`: each member created or updated, errors reported per member."""

    def _batch_subscribe(self, request: Request) -> Response:
        audience = self._audience(request)
        body = json_object(request)
        items: Any = body.get("members")  # a list once _check_batch_items passes
        self._check_batch_items(items)
        outcome: dict[str, list[Any]] = {"new_members": [], "updated_members": [], "errors": []}
        seen: set[str] = set()
        skip_duplicates = flag(request, "skip_duplicate_check")
        for item in items:
            if skip_duplicates and subscriber_hash(item["email_address"]) in seen:
                continue
            self._subscribe_one(audience, item, body, request, seen, outcome)
        return Response(
            200,
            {
                **outcome,
                "total_created": len(outcome["new_members"]),
                "total_updated": len(outcome["updated_members"]),
                "error_count": len(outcome["errors"]),
            },
            JSON_CONTENT_TYPE,
        )

    @staticmethod
    def _check_batch_items(items: Any) -> None:
        """Schema checks fail the whole request (pessimistic), not just the one item."""
        if not isinstance(items, list):
            raise field_error("members", "Required fields were not provided: members")
        if len(items) > BULK_LIMIT:
            raise field_error("members", f"You may only send up to {BULK_LIMIT} members per call.")
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("email_address"), str):
                raise field_error(
                    f"members.{index}.email_address",
                    "Required fields were not provided: email_address",
                )
            if not (item.get("status") or item.get("status_if_new")):
                raise field_error(
                    f"members.{index}.status",
                    "Required fields were not provided: status or status_if_new",
                )
            check_status_value(item, "status", BATCH_ITEM_STATUSES)
            check_status_value(item, "status_if_new", BATCH_ITEM_STATUSES)

    def _subscribe_one(
        self,
        audience: Audience,
        item: dict[str, Any],
        body: dict[str, Any],
        request: Request,
        seen: set[str],
        outcome: dict[str, list[Any]],
    ) -> None:
        email = item["email_address"]
        member_id = subscriber_hash(email)
        try:
            if member_id in seen:
                raise invalid(
                    f"{email} appears more than once in this request.", field_name="email_address"
                )
            seen.add(member_id)
            self._subscribe_or_update(audience, item, body, request, outcome)
        except ApiError as error:
            outcome["errors"].append(self._bulk_error(email, error))

    def _subscribe_or_update(
        self,
        audience: Audience,
        item: dict[str, Any],
        body: dict[str, Any],
        request: Request,
        outcome: dict[str, list[Any]],
    ) -> None:
        """Item tags are create-only unless sync_tags, which replaces every tag of the member."""
        email = item["email_address"]
        member = audience.members.get(subscriber_hash(email))
        if member is None:
            status = item.get("status") or item["status_if_new"]
            member = self._create_member(
                audience, email, status, item, flag(request, "skip_merge_validation")
            )
            outcome["new_members"].append(self._member_json(audience, member))
            return
        if not body.get("update_existing"):
            outcome["errors"].append(
                {
                    "email_address": email,
                    "error": contact_exists_text(email),
                    "error_code": "ERROR_CONTACT_EXISTS",
                    "field": "email_address",
                    "field_message": "",
                }
            )
            return
        self._update_member(audience, member, {k: v for k, v in item.items() if k != "tags"})
        if body.get("sync_tags"):
            self._sync_tags(audience, member, item.get("tags") or [])
        outcome["updated_members"].append(self._member_json(audience, member))

    @staticmethod
    def _bulk_error(email: str, error: ApiError) -> dict[str, str]:
        field_message = error.errors[0]["message"] if error.errors else error.detail
        return {
            "email_address": email,
            "error": error.detail,
            "error_code": "ERROR_GENERIC",
            "field": error.field_name,
            "field_message": field_message,
        }
