"""Klaviyo's consent endpoints: bulk subscribe (the only way to grant consent), bulk unsubscribe."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.klaviyo.errors import ApiError, invalid, invalid_object
from kommo_sync.sandbox.klaviyo.records import KlaviyoList, Profile
from kommo_sync.sandbox.klaviyo.resources import KlaviyoResources
from kommo_sync.sandbox.klaviyo.rules import (
    JSONAPI,
    MAX_SUBSCRIBE,
    MAX_UNSUBSCRIBE,
    SUBSCRIBE_ATTRIBUTES,
    parse_datetime,
)
from kommo_sync.sandbox.klaviyo.validation import attribute_errors
from kommo_sync.sandbox.server import Request, Response


class ConsentEndpoints(KlaviyoResources):
    """`/api/profile-subscription-bulk-create-jobs` and `-delete-jobs`."""

    def _consent_rows(
        self, request: Request, job_type: str, maximum: int
    ) -> tuple[dict[str, Any], list[Any]]:
        data = self._data(request, job_type)
        rows = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(rows, list) or not 1 <= len(rows) <= maximum:
            raise invalid(
                f"Between 1 and {maximum} profiles are allowed per request.",
                "/data/attributes/profiles/data",
            )
        return data, rows

    def _consent_list(self, data: dict[str, Any]) -> KlaviyoList | None:
        list_id = ((((data.get("relationships") or {}).get("list") or {}).get("data")) or {}).get(
            "id"
        )
        if list_id is None:
            return None
        if list_id not in self.lists:
            raise invalid(f"List not found with id {list_id}", "/data/relationships/list/data/id")
        return self.lists[list_id]

    def _bulk_subscribe(self, request: Request) -> Response:
        data, rows = self._consent_rows(
            request, "profile-subscription-bulk-create-job", MAX_SUBSCRIBE
        )
        attributes = data.get("attributes") or {}
        historical = attributes.get("historical_import") is True
        klaviyo_list = self._consent_list(data)
        errors = [
            error
            for index, row in enumerate(rows)
            for error in self._subscribe_row_errors(index, row, historical)
        ]
        if errors:
            raise ApiError(400, errors)
        if self.jobs_never_finish:
            return Response(202, None, JSONAPI)
        for row in rows:
            self._subscribe_row(row, historical, klaviyo_list, attributes.get("custom_source"))
        return Response(202, None, JSONAPI)

    def _subscribe_row_errors(self, index: int, row: Any, historical: bool) -> list[dict[str, Any]]:
        pointer = f"/data/attributes/profiles/data/{index}/attributes"
        attributes: Any = row.get("attributes") if isinstance(row, dict) else None
        errors = attribute_errors(attributes, pointer, SUBSCRIBE_ATTRIBUTES)
        if errors:
            return errors
        if not (attributes.get("email") or attributes.get("phone_number") or row.get("id")):
            errors.append(invalid_object("An email or phone_number is required.", pointer))
        marketing = ((attributes.get("subscriptions") or {}).get("email") or {}).get("marketing")
        if marketing is not None:
            errors += self._consent_errors(
                marketing, f"{pointer}/subscriptions/email/marketing", historical
            )
        return errors

    def _consent_errors(
        self, marketing: Any, pointer: str, historical: bool
    ) -> list[dict[str, Any]]:
        if not isinstance(marketing, dict) or marketing.get("consent") != "SUBSCRIBED":
            return [
                invalid_object(
                    "The only supported consent value is 'SUBSCRIBED'.", f"{pointer}/consent"
                )
            ]
        consented_at: Any = marketing.get("consented_at")
        if consented_at is not None and not historical:
            return [
                invalid_object(
                    "'consented_at' may only be set with historical_import.",
                    f"{pointer}/consented_at",
                )
            ]
        if historical and consented_at is None:
            return [
                invalid_object(
                    "'consented_at' is required with historical_import.", f"{pointer}/consented_at"
                )
            ]
        if historical and (
            self._event_time_errors(consented_at, "")
            or parse_datetime(consented_at) > self.clock.now()
        ):
            return [
                invalid_object(
                    "'consented_at' must be a datetime in the past.", f"{pointer}/consented_at"
                )
            ]
        return []

    def _subscribe_row(
        self,
        row: dict[str, Any],
        historical: bool,
        klaviyo_list: KlaviyoList | None,
        source: str | None,
    ) -> None:
        attributes = row["attributes"]
        marketing = ((attributes.get("subscriptions") or {}).get("email") or {}).get("marketing")
        profile = self._consent_profile(row)
        if marketing is None:
            return
        if klaviyo_list and klaviyo_list.opt_in_process == "double_opt_in" and not historical:
            return  # waits for the person to confirm; nothing changes yet
        consented_at = parse_datetime(marketing["consented_at"]) if historical else self.clock.now()
        self._subscribe(
            profile, consented_at, "API", source, klaviyo_list.id if klaviyo_list else None
        )

    def _consent_profile(self, row: dict[str, Any]) -> Profile:
        """The profile a consent row names (id, email, then phone), created when unknown."""
        attributes = row["attributes"]
        profile = (
            self.profiles.get(row.get("id"))
            or self.profiles.find("email", attributes.get("email"))
            or self.profiles.find("phone_number", attributes.get("phone_number"))
        )
        if profile is None:
            profile = self._new_profile()
            self._apply_attributes(
                profile,
                {k: attributes.get(k) for k in ("email", "phone_number") if attributes.get(k)},
            )
        return profile

    def _bulk_unsubscribe(self, request: Request) -> Response:
        data, rows = self._consent_rows(
            request, "profile-subscription-bulk-delete-job", MAX_UNSUBSCRIBE
        )
        klaviyo_list = self._consent_list(data)
        errors = [
            error
            for index, row in enumerate(rows)
            for error in self._unsubscribe_row_errors(index, row)
        ]
        if errors:
            raise ApiError(400, errors)
        if self.jobs_never_finish:
            return Response(202, None, JSONAPI)
        now = self.clock.now()
        for row in rows:
            profile = self._consent_profile(row)
            if klaviyo_list and profile.id in klaviyo_list.members:
                self._unsubscribe_from_list(profile, klaviyo_list.id, now)
            else:
                self._suppress(profile, now, "UNSUBSCRIBE", "API")
        return Response(202, None, JSONAPI)

    def _unsubscribe_row_errors(self, index: int, row: Any) -> list[dict[str, Any]]:
        pointer = f"/data/attributes/profiles/data/{index}/attributes"
        attributes: Any = row.get("attributes") if isinstance(row, dict) else None
        errors = attribute_errors(
            attributes, pointer, SUBSCRIBE_ATTRIBUTES - {"age_gated_date_of_birth"}
        )
        if errors:
            return errors
        if not (attributes.get("email") or attributes.get("phone_number")):
            return [invalid_object("An email or phone_number is required.", pointer)]
        marketing = ((attributes.get("subscriptions") or {}).get("email") or {}).get(
            "marketing"
        ) or {}
        if marketing.get("consent") != "UNSUBSCRIBED":
            return [
                invalid_object(
                    "The only supported consent value is 'UNSUBSCRIBED'.",
                    f"{pointer}/subscriptions/email/marketing/consent",
                )
            ]
        return []
