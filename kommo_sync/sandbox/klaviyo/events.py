"""Klaviyo's event and metric endpoints: one event, bulk event jobs, event and metric reads."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.klaviyo.errors import ApiError, invalid, invalid_object, not_found_error
from kommo_sync.sandbox.klaviyo.filters import (
    EVENT_FILTERS,
    METRIC_FILTERS,
    normalized,
    parse_filter,
    satisfies,
)
from kommo_sync.sandbox.klaviyo.records import EVENT_SORTS, Event, Profile
from kommo_sync.sandbox.klaviyo.resources import KlaviyoResources
from kommo_sync.sandbox.klaviyo.rules import (
    EVENT_PROFILE_ATTRIBUTES,
    EVENTS_PER_PAGE_CAP,
    IDENTIFIERS,
    JSONAPI,
    MAX_BULK_EVENTS,
    MAX_EVENT_PROPERTIES,
    parse_datetime,
)
from kommo_sync.sandbox.klaviyo.validation import attribute_errors, has_identifier
from kommo_sync.sandbox.server import Request, Response


class EventEndpoints(KlaviyoResources):
    """`/api/events`, `/api/event-bulk-create-jobs` and `/api/metrics`."""

    def _create_event(self, request: Request) -> Response:
        data = self._data(request, "event")
        attributes = data.get("attributes")
        if not isinstance(attributes, dict):
            raise invalid("'attributes' is a required field.", "/data/attributes")
        profile_data: Any = (attributes.get("profile") or {}).get("data")
        errors = self._event_errors(attributes, "/data/attributes")
        errors += self._event_profile_errors(
            profile_data, "/data/attributes/profile/data", meta_inside=True
        )
        if errors:
            raise ApiError(400, errors)
        profile_attributes = dict(profile_data.get("attributes") or {})
        meta = profile_attributes.pop("meta", None)
        profile = self._event_profile(profile_data.get("id"), profile_attributes, meta)
        self._store_event(attributes, profile)
        return Response(202, None, JSONAPI)

    def _event_errors(self, attributes: dict[str, Any], pointer: str) -> list[dict[str, Any]]:
        """Validation of an event's own attributes (not its profile)."""
        errors = []
        properties = attributes.get("properties")
        if not isinstance(properties, dict):
            errors.append(
                invalid_object("'properties' is a required field.", f"{pointer}/properties")
            )
        elif len(properties) > MAX_EVENT_PROPERTIES:
            errors.append(
                invalid_object("An event may have at most 400 properties.", f"{pointer}/properties")
            )
        name = (((attributes.get("metric") or {}).get("data") or {}).get("attributes") or {}).get(
            "name"
        )
        if not isinstance(name, str) or not name or len(name) >= 128:
            errors.append(
                invalid_object(
                    "A metric name of fewer than 128 characters is required.",
                    f"{pointer}/metric/data/attributes/name",
                )
            )
        errors += self._event_time_errors(attributes.get("time"), f"{pointer}/time")
        value = attributes.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            errors.append(invalid_object("'value' must be a number.", f"{pointer}/value"))
        return errors

    def _event_profile_errors(
        self, profile_data: Any, pointer: str, meta_inside: bool
    ) -> list[dict[str, Any]]:
        """An event's profile: one event carries `meta` in its attributes, bulk ones beside."""
        if not isinstance(profile_data, dict) or profile_data.get("type") != "profile":
            return [invalid_object("A profile of type 'profile' is required.", pointer)]
        allowed = EVENT_PROFILE_ATTRIBUTES | ({"meta"} if meta_inside else set())
        resource_keys = {"type", "id", "attributes"} | (set() if meta_inside else {"meta"})
        errors = [
            invalid_object(
                f"'{name}' is not a valid field for the resource 'profile'.", f"{pointer}/{name}"
            )
            for name in profile_data
            if name not in resource_keys
        ]
        attributes = profile_data.get("attributes") or {}
        errors += attribute_errors(attributes, f"{pointer}/attributes", frozenset(allowed))
        if not errors and not profile_data.get("id") and not has_identifier(attributes):
            errors.append(
                invalid_object(
                    "A profile identifier (id, email, phone_number or external_id) is required.",
                    f"{pointer}/attributes",
                )
            )
        return errors

    def _event_profile(
        self, profile_id: str | None, attributes: dict[str, Any], meta: Any
    ) -> Profile:
        attributes = {k: v for k, v in attributes.items() if k not in ("anonymous_id", "_kx")}
        profile, _ = self._upsert(profile_id, attributes, meta)
        return profile

    def _store_event(self, attributes: dict[str, Any], profile: Profile) -> Event | None:
        raw_time = attributes.get("time")
        moment = parse_datetime(raw_time) if raw_time else self.clock.now()
        name = attributes["metric"]["data"]["attributes"]["name"]
        return self._record_event(
            name,
            profile,
            moment,
            dict(attributes["properties"]),
            attributes.get("value"),
            attributes.get("value_currency"),
            attributes.get("unique_id"),
        )

    def _bulk_create_events(self, request: Request) -> Response:
        data = self._data(request, "event-bulk-create-job")
        pointer = "/data/attributes/events-bulk-create/data"
        entries = ((data.get("attributes") or {}).get("events-bulk-create") or {}).get("data")
        if not isinstance(entries, list) or not entries:
            raise invalid("'events-bulk-create' needs at least one entry.", pointer)
        errors = [
            error
            for index, entry in enumerate(entries)
            for error in self._bulk_entry_errors(entry, f"{pointer}/{index}")
        ]
        if errors:
            raise ApiError(400, errors)
        if sum(len(entry["attributes"]["events"]["data"]) for entry in entries) > MAX_BULK_EVENTS:
            raise invalid(f"At most {MAX_BULK_EVENTS} events are allowed per request.", pointer)
        self._refuse_repeated_unique_ids(entries, pointer)
        for (
            entry
        ) in entries:  # a profile conflict refuses the whole request before anything is stored
            profile_data = entry["attributes"]["profile"]["data"]
            self._resolve(profile_data.get("id"), profile_data.get("attributes") or {})
        if self.jobs_never_finish:
            return Response(202, None, JSONAPI)
        self._later(self.timing.events_after, "_store_bulk_events", entries)
        return Response(202, None, JSONAPI)

    def _store_bulk_events(self, entries: list[dict[str, Any]]) -> None:
        """An accepted event bulk-create job, applied (at once, or later as `timing` says)."""
        for entry in entries:
            profile_data = entry["attributes"]["profile"]["data"]
            profile = self._event_profile(
                profile_data.get("id"),
                dict(profile_data.get("attributes") or {}),
                profile_data.get("meta"),
            )
            for event in entry["attributes"]["events"]["data"]:
                self._store_event(event["attributes"], profile)

    def _bulk_entry_errors(self, entry: Any, pointer: str) -> list[dict[str, Any]]:
        attributes = entry.get("attributes") if isinstance(entry, dict) else None
        if not isinstance(attributes, dict):
            return [invalid_object("'attributes' is a required field.", f"{pointer}/attributes")]
        profile_data = (attributes.get("profile") or {}).get("data")
        errors = self._event_profile_errors(
            profile_data, f"{pointer}/attributes/profile/data", meta_inside=False
        )
        events = (attributes.get("events") or {}).get("data")
        if not isinstance(events, list) or not events:
            return errors + [
                invalid_object("'events' needs at least one event.", f"{pointer}/attributes/events")
            ]
        for index, event in enumerate(events):
            event_pointer = f"{pointer}/attributes/events/data/{index}/attributes"
            event_attributes = event.get("attributes") if isinstance(event, dict) else None
            if not isinstance(event_attributes, dict):
                errors.append(invalid_object("'attributes' is a required field.", event_pointer))
            else:
                errors += self._event_errors(event_attributes, event_pointer)
        return errors

    def _refuse_repeated_unique_ids(self, entries: list[dict[str, Any]], pointer: str) -> None:
        """Spec: a unique_id repeated for one profile and metric fails the whole bulk request."""
        seen: set[tuple] = set()
        for index, entry in enumerate(entries):
            person = self._person_key(entry["attributes"]["profile"]["data"])
            for number, event in enumerate(entry["attributes"]["events"]["data"]):
                attributes = event["attributes"]
                raw_time = attributes.get("time")
                moment = parse_datetime(raw_time) if raw_time else self.clock.now()
                key = self._event_key(
                    attributes["metric"]["data"]["attributes"]["name"],
                    person,
                    moment,
                    attributes.get("unique_id"),
                )
                if key in seen:
                    raise invalid(
                        f"The unique_id '{key[2]}' is repeated for the same profile and metric.",
                        f"{pointer}/{index}/attributes/events/data/{number}/attributes/unique_id",
                    )
                seen.add(key)

    def _person_key(self, profile_data: dict[str, Any]) -> str:
        """Who an event entry is about: the existing profile, else its first identifier."""
        attributes = profile_data.get("attributes") or {}
        owners = self.profiles.owners(attributes)
        if profile_data.get("id"):
            return profile_data["id"]
        if owners:
            return next(iter(owners.values())).id
        name = next(name for name in IDENTIFIERS if attributes.get(name))
        return f"{name}:{normalized(name, attributes[name])}"

    def _get_events(self, request: Request) -> Response:
        conditions = parse_filter(request.arg("filter"), EVENT_FILTERS)
        sort_key, descending = self._sort(request, EVENT_SORTS, "datetime")
        matching = (
            e
            for e in self.event_log
            if all(satisfies(e.filter_values(c.field), c) for c in conditions)
        )
        page, links = self._paginate(
            request, matching, sort_key, (200, 1000), descending, EVENTS_PER_PAGE_CAP
        )
        body: dict[str, Any] = {
            "data": [self._event_resource(request, e) for e in page],
            "links": links,
        }
        included = self._event_includes(request, page)
        if included is not None:
            body["included"] = included
        return Response(200, body, JSONAPI)

    def _event_includes(self, request: Request, events: list[Event]) -> list[dict[str, Any]] | None:
        include = self._query_values(request, "include")
        unknown = include - {"profile", "metric", "attributions"}
        if unknown:
            raise invalid(f"'{sorted(unknown)[0]}' is not a valid include.", parameter="include")
        if not include:
            return None
        included: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            if "profile" in include:
                included[("profile", event.profile_id)] = self._profile_resource(
                    request,
                    self.profiles.by_id[event.profile_id],
                    fields=self._profile_fields(request),
                )
            if "metric" in include:
                included[("metric", event.metric_id)] = self._metric_resource(
                    request, self.metrics[event.metric_id]
                )
        return list(included.values())

    def _get_metrics(self, request: Request) -> Response:
        conditions = parse_filter(request.arg("filter"), METRIC_FILTERS)
        matching = [
            m
            for m in self.metrics.values()
            if all(satisfies([m.integration.get(c.field.split(".")[1])], c) for c in conditions)
        ]
        page, links = self._paginate(request, matching, lambda m: m.id, (200, 200))
        return Response(
            200,
            {"data": [self._metric_resource(request, m) for m in page], "links": links},
            JSONAPI,
        )

    def _get_metric(self, request: Request) -> Response:
        metric = self.metrics.get(request.params["metric_id"])
        if metric is None:
            raise not_found_error(f"A metric with id {request.params['metric_id']} does not exist.")
        return Response(200, {"data": self._metric_resource(request, metric)}, JSONAPI)
