"""Klaviyo's account and profile endpoints: `GET /api/accounts`, profile import, profile reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kommo_sync.sandbox.klaviyo.errors import ApiError, invalid, not_found_error
from kommo_sync.sandbox.klaviyo.filters import (
    PROFILE_FILTERS,
    Condition,
    parse_filter,
    satisfies,
)
from kommo_sync.sandbox.klaviyo.records import PROFILE_SORTS, Profile
from kommo_sync.sandbox.klaviyo.resources import KlaviyoResources
from kommo_sync.sandbox.klaviyo.rules import IDENTIFIERS, JSONAPI, PROFILE_ATTRIBUTES
from kommo_sync.sandbox.klaviyo.validation import attribute_errors
from kommo_sync.sandbox.server import Request, Response


class ProfileEndpoints(KlaviyoResources):
    """`/api/accounts`, `/api/profile-import`, `/api/profiles` and `/api/profiles/{id}`."""

    def _get_accounts(self, request: Request) -> Response:
        account = {
            "type": "account",
            "id": "SbX0K1",
            "attributes": {
                "test_account": True,
                "public_api_key": "SbX0K1",
                "timezone": "UTC",
                "preferred_currency": "USD",
                "contact_information": {"organization_name": "Sandbox", "website_url": None},
            },
            "links": {"self": f"{self._base(request)}/api/accounts/SbX0K1/"},
        }
        return Response(
            200,
            {"data": [account], "links": {"self": self._url(request), "next": None, "prev": None}},
            JSONAPI,
        )

    def _import_profile(self, request: Request) -> Response:
        data = self._data(request, "profile")
        attributes = data.get("attributes")
        errors = attribute_errors(attributes, "/data/attributes", PROFILE_ATTRIBUTES)
        if errors:
            raise ApiError(400, errors)
        profile, created = self._upsert(data.get("id"), attributes, data.get("meta"))
        resource = self._profile_resource(
            request, profile, self._wants_subscriptions(request), self._profile_fields(request)
        )
        return Response(
            201 if created else 200,
            {"data": resource, "links": {"self": resource["links"]["self"]}},
            JSONAPI,
        )

    def _get_profile(self, request: Request) -> Response:
        profile = self.profiles.get(request.params["profile_id"])
        if profile is None:
            raise not_found_error(
                f"A profile with id {request.params['profile_id']} does not exist."
            )
        resource = self._profile_resource(
            request, profile, self._wants_subscriptions(request), self._profile_fields(request)
        )
        body: dict[str, Any] = {"data": resource, "links": {"self": self._url(request)}}
        if "lists" in self._query_values(request, "include"):
            list_ids = self._profile_lists(profile.id)
            resource["relationships"]["lists"]["data"] = [
                {"type": "list", "id": i} for i in list_ids
            ]
            body["included"] = [self._list_resource(request, self.lists[i]) for i in list_ids]
        return Response(200, body, JSONAPI)

    def _get_profiles(self, request: Request) -> Response:
        self._refuse_sorted_subscription_filter(request)
        conditions = parse_filter(request.arg("filter"), PROFILE_FILTERS)
        sort_key, descending = self._sort(request, PROFILE_SORTS, "id")
        candidates = self._indexed_candidates(conditions)
        matching = (
            p for p in candidates if all(satisfies(p.filter_values(c.field), c) for c in conditions)
        )
        page, links = self._paginate(request, matching, sort_key, (20, 100), descending)
        subscriptions, fields = self._wants_subscriptions(request), self._profile_fields(request)
        data = [self._profile_resource(request, p, subscriptions, fields) for p in page]
        return Response(200, {"data": data, "links": links}, JSONAPI)

    def _refuse_sorted_subscription_filter(self, request: Request) -> None:
        """The refuse_sort_with_subscription_filter switch: a 400 seen from the real API."""
        if (
            self.refuse_sort_with_subscription_filter
            and "sort" in request.query
            and "subscriptions" in (request.arg("filter") or "")
        ):
            raise invalid(
                "You may not filter on subscriptions and sort at the same time.", parameter="sort"
            )

    def _indexed_candidates(self, conditions: list[Condition]) -> Iterable[Profile]:
        """Profiles an id or identifier condition narrows the search to; all profiles otherwise."""
        for condition in conditions:
            if condition.field in ("id",) + IDENTIFIERS:
                values = condition.value if condition.op == "any" else [condition.value]
                found = (
                    self.profiles.get(v)
                    if condition.field == "id"
                    else self.profiles.find(condition.field, v)
                    for v in values
                )
                return {p.id: p for p in found if p is not None}.values()
        return list(self.profiles.by_id.values())
