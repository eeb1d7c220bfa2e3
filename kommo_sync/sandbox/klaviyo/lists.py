"""Klaviyo's list endpoints: lists created and read, members added, removed and paged."""

from __future__ import annotations

from kommo_sync.sandbox.klaviyo.errors import ApiError, invalid, invalid_object
from kommo_sync.sandbox.klaviyo.filters import (
    LIST_FILTERS,
    MEMBER_FILTERS,
    parse_filter,
    satisfies,
)
from kommo_sync.sandbox.klaviyo.records import (
    LIST_SORTS,
    Keyed,
    KlaviyoList,
    Profile,
    list_filter_values,
    member_filter_values,
)
from kommo_sync.sandbox.klaviyo.resources import KlaviyoResources
from kommo_sync.sandbox.klaviyo.rules import JSONAPI, MAX_LIST_CHANGE, sort_text
from kommo_sync.sandbox.server import Request, Response


class ListEndpoints(KlaviyoResources):
    """`/api/lists` and `/api/lists/{id}` with their profile relationships."""

    def _create_list(self, request: Request) -> Response:
        data = self._data(request, "list")
        attributes = data.get("attributes") or {}
        name = attributes.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid("'name' is a required field.", "/data/attributes/name")
        opt_in = attributes.get("opt_in_process") or "single_opt_in"
        if opt_in not in ("single_opt_in", "double_opt_in"):
            raise invalid(
                f"'{opt_in}' is not a valid opt_in_process.", "/data/attributes/opt_in_process"
            )
        klaviyo_list = self._new_list(name, opt_in)
        return Response(201, {"data": self._list_resource(request, klaviyo_list)}, JSONAPI)

    def _get_lists(self, request: Request) -> Response:
        conditions = parse_filter(request.arg("filter"), LIST_FILTERS)
        sort_key, descending = self._sort(request, LIST_SORTS, "id")
        matching = [
            klaviyo_list
            for klaviyo_list in self.lists.values()
            if all(satisfies(list_filter_values(klaviyo_list, c.field), c) for c in conditions)
        ]
        page, links = self._paginate(request, matching, sort_key, (10, 10), descending)
        return Response(
            200,
            {"data": [self._list_resource(request, item) for item in page], "links": links},
            JSONAPI,
        )

    def _get_list(self, request: Request) -> Response:
        counted = "profile_count" in self._query_values(request, "additional-fields[list]")
        return Response(
            200,
            {
                "data": self._list_resource(request, self._list(request), counted),
                "links": {"self": self._url(request)},
            },
            JSONAPI,
        )

    def _list_change(self, request: Request) -> tuple[KlaviyoList, list[str]]:
        """The list and profile ids of an add/remove request; an unknown id refuses it all."""
        klaviyo_list = self._list(request)
        data = self._data(request, None)
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_LIST_CHANGE:
            raise invalid(
                f"Between 1 and {MAX_LIST_CHANGE} profiles are allowed per request.", "/data"
            )
        errors = []
        for index, entry in enumerate(data):
            if not isinstance(entry, dict) or entry.get("type") != "profile":
                errors.append(
                    invalid_object("The resource type must be 'profile'.", f"/data/{index}/type")
                )
            elif self.profiles.get(entry.get("id")) is None:
                errors.append(
                    invalid_object(
                        f"A profile with id {entry.get('id')} does not exist.", f"/data/{index}/id"
                    )
                )
        if errors:
            raise ApiError(400, errors)
        return klaviyo_list, [entry["id"] for entry in data]

    def _add_to_list(self, request: Request) -> Response:
        klaviyo_list, profile_ids = self._list_change(request)
        now = self.clock.now()
        for profile_id in profile_ids:
            klaviyo_list.members.setdefault(profile_id, now)
        return Response(204, None, JSONAPI)

    def _remove_from_list(self, request: Request) -> Response:
        klaviyo_list, profile_ids = self._list_change(request)
        for profile_id in profile_ids:
            klaviyo_list.members.pop(profile_id, None)
        return Response(204, None, JSONAPI)

    def _list_member_page(self, request: Request) -> tuple[list[Profile], dict[str, str | None]]:
        klaviyo_list = self._list(request)
        conditions = parse_filter(request.arg("filter"), MEMBER_FILTERS)
        raw_sort = request.arg("sort") or "joined_group_at"
        if raw_sort.lstrip("-") != "joined_group_at":
            raise invalid(f"'{raw_sort}' is not a valid sort field.", parameter="sort")
        members = [
            Keyed(pid, sort_text(joined), self.profiles.by_id[pid])
            for pid, joined in klaviyo_list.members.items()
            if all(
                satisfies(member_filter_values(self.profiles.by_id[pid], joined, c.field), c)
                for c in conditions
            )
        ]
        page, links = self._paginate(
            request, members, lambda k: k.key, (20, 100), raw_sort.startswith("-")
        )
        return [k.item for k in page], links

    def _get_list_profile_ids(self, request: Request) -> Response:
        profiles, links = self._list_member_page(request)
        return Response(
            200,
            {"data": [{"type": "profile", "id": p.id} for p in profiles], "links": links},
            JSONAPI,
        )

    def _get_list_profiles(self, request: Request) -> Response:
        profiles, links = self._list_member_page(request)
        subscriptions, fields = self._wants_subscriptions(request), self._profile_fields(request)
        data = [self._profile_resource(request, p, subscriptions, fields) for p in profiles]
        return Response(200, {"data": data, "links": links}, JSONAPI)
