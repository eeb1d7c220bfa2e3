"""Klaviyo's consent endpoints: bulk subscribe (the only way to grant consent), bulk unsubscribe."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from kommo_sync.sandbox.klaviyo.errors import ApiError, invalid, invalid_object
from kommo_sync.sandbox.klaviyo.records import KlaviyoList, Profile
from kommo_sync.sandbox.klaviyo.resources import KlaviyoResources
from kommo_sync.sandbox.klaviyo.rules import (
    AGE_GATE_YEARS,
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
        list_id = klaviyo_list.id if klaviyo_list else None
        source = attributes.get("custom_source")
        self._later(
            self.timing.subscribe_after, "_subscribe_rows", rows, historical, list_id, source
        )
        return Response(202, None, JSONAPI)

    def _subscribe_rows(
        self, rows: list[Any], historical: bool, list_id: str | None, source: str | None
    ) -> None:
        """An accepted bulk subscribe, applied (at once, or later as `timing` says)."""
        klaviyo_list = self.lists.get(list_id) if list_id else None
        for row in rows:
            self._subscribe_row(row, historical, klaviyo_list, source)

    def _subscribe_row_errors(self, index: int, row: Any, historical: bool) -> list[dict[str, Any]]:
        pointer = f"/data/attributes/profiles/data/{index}/attributes"
        attributes: Any = row.get("attributes") if isinstance(row, dict) else None
        errors = attribute_errors(attributes, pointer, SUBSCRIBE_ATTRIBUTES)
        if errors:
            return errors
        if not (attributes.get("email") or attributes.get("phone_number") or row.get("id")):
            errors.append(invalid_object("An email or phone_number is required.", pointer))
        for channel in ("email", "sms"):
            marketing = _marketing(attributes, channel)
            if marketing is not None:
                errors += self._consent_errors(
                    marketing, f"{pointer}/subscriptions/{channel}/marketing", historical
                )
        if _marketing(attributes, "sms") is not None and not errors:
            errors += self._sms_subscribe_errors(row, attributes, pointer)
        return errors

    def _sms_subscribe_errors(
        self, row: dict[str, Any], attributes: dict[str, Any], pointer: str
    ) -> list[dict[str, Any]]:
        """SMS consent needs a phone (given or on the profile) and, on an age-gated account, a
        date of birth old enough."""
        known = self.profiles.get(row.get("id")) or self.profiles.find(
            "email", attributes.get("email")
        )
        if not (attributes.get("phone_number") or (known and known.fields.get("phone_number"))):
            return [
                invalid_object(
                    "A phone_number is required to subscribe to SMS.", f"{pointer}/phone_number"
                )
            ]
        if self.age_gated:
            return _age_gate_errors(
                attributes.get("age_gated_date_of_birth"),
                f"{pointer}/age_gated_date_of_birth",
                datetime.fromtimestamp(self.clock.now(), UTC).date(),
            )
        return []

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
        profile = self._consent_profile(row)
        if klaviyo_list and klaviyo_list.opt_in_process == "double_opt_in" and not historical:
            return  # waits for the person to confirm; nothing changes yet
        for channel in ("email", "sms"):
            marketing = _marketing(attributes, channel)
            if marketing is None:
                continue
            at = parse_datetime(marketing["consented_at"]) if historical else self.clock.now()
            if channel == "sms":
                if not profile.fields.get("phone_number"):
                    self.profiles.set_identifier(
                        profile, "phone_number", attributes["phone_number"]
                    )
                self._sms_consent(profile, "SUBSCRIBED", at, "API")
                continue
            self._subscribe(profile, at, "API", source, klaviyo_list.id if klaviyo_list else None)

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
            if _marketing(row["attributes"], "sms") is not None:
                self._sms_consent(profile, "UNSUBSCRIBED", now, "API")
            if _marketing(row["attributes"], "email") is None:
                continue
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
        blocks = {c: _marketing(attributes, c) for c in ("email", "sms")}
        given = {c: b for c, b in blocks.items() if b is not None} or {"email": {}}
        return [
            invalid_object(
                "The only supported consent value is 'UNSUBSCRIBED'.",
                f"{pointer}/subscriptions/{channel}/marketing/consent",
            )
            for channel, block in given.items()
            if not isinstance(block, dict) or block.get("consent") != "UNSUBSCRIBED"
        ]


def _marketing(attributes: dict[str, Any], channel: str) -> Any:
    """A row's `subscriptions.<channel>.marketing` block (None when absent)."""
    return ((attributes.get("subscriptions") or {}).get(channel) or {}).get("marketing")


def _age_gate_errors(raw: Any, pointer: str, today: date) -> list[dict[str, Any]]:
    """An age-gated account refuses SMS consent without a date of birth, or under the age."""
    try:
        born = date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        born = None
    if born is None:
        detail = (
            "This account uses age-gating: 'age_gated_date_of_birth' is required to update "
            "SMS consent."
        )
        return [invalid_object(detail, pointer)]
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if years < AGE_GATE_YEARS:
        detail = f"The profile is under this account's age-gating minimum of {AGE_GATE_YEARS}."
        return [invalid_object(detail, pointer)]
    return []
