"""What happens to a Klaviyo account's data: profiles created and merged, consent given and
revoked, lists made, events recorded (de-duplicated on their key)."""

from __future__ import annotations

import uuid
from typing import Any

from kommo_sync.sandbox.klaviyo.base import KlaviyoBase
from kommo_sync.sandbox.klaviyo.errors import (
    duplicate_profile,
    invalid,
    invalid_object,
    not_found_error,
)
from kommo_sync.sandbox.klaviyo.records import Event, KlaviyoList, Metric, Profile
from kommo_sync.sandbox.klaviyo.rules import (
    API_INTEGRATION,
    EPOCH_1990,
    IDENTIFIERS,
    KLAVIYO_INTEGRATION,
    KLAVIYO_METRICS,
    LIFTED_BY_SUBSCRIBE,
    METRIC_FOR_SUPPRESSION,
    PLAIN_FIELDS,
    REVOKES_CONSENT,
    SMS_SUBSCRIBED_METRIC,
    SMS_UNSUBSCRIBED_METRIC,
    SUBSCRIBED_METRIC,
    YEAR_SECONDS,
    merge_into,
    parse_datetime,
    patch_properties,
)
from kommo_sync.sandbox.klaviyo.validation import has_identifier
from kommo_sync.sandbox.server import Request


class KlaviyoState(KlaviyoBase):
    """Changes to profiles, consent, lists and events, shared by endpoints and test hooks."""

    def _new_profile(self) -> Profile:
        now = self.clock.now()
        profile = Profile(self._next_id(), now, now)
        self.profiles.add(profile)
        return profile

    def _profile_for_email(self, email: str) -> Profile:
        profile = self.profiles.find("email", email)
        if profile is None:
            profile = self._new_profile()
            self.profiles.set_identifier(profile, "email", email)
        return profile

    def _resolve(self, profile_id: str | None, attributes: dict[str, Any]) -> Profile | None:
        """The existing profile a request names; None for a new one.

        Identifiers of two different profiles give 409 duplicate_profile (the email's owner is
        reported). So does a new email whose phone or external id belongs to a profile with
        another email: an email that matches nothing never takes over someone else's profile.
        An id whose other identifiers belong elsewhere gives the observed 404.
        """
        owners = self.profiles.owners(attributes)
        if profile_id:
            target = self.profiles.get(profile_id)
            if target is None or any(owner.id != profile_id for owner in owners.values()):
                raise not_found_error(f"A profile with id {profile_id} does not exist.")
            return target
        distinct = {owner.id: owner for owner in owners.values()}
        if len(distinct) > 1:
            raise duplicate_profile(next(iter(owners.values())).id)
        found = next(iter(distinct.values()), None)
        if (
            found is not None
            and attributes.get("email")
            and "email" not in owners
            and found.fields.get("email")
        ):
            raise duplicate_profile(found.id)
        return found

    def _upsert(
        self,
        profile_id: str | None,
        attributes: dict[str, Any],
        meta: Any,
        pointer: str = "/data/attributes",
    ) -> tuple[Profile, bool]:
        """Create or update a profile; True when it was created. Consent is never touched."""
        profile = self._resolve(profile_id, attributes)
        created = profile is None
        if profile is None:
            if not has_identifier(attributes):
                raise invalid(
                    "One of 'email', 'phone_number' or 'external_id' is required.", pointer
                )
            profile = self._new_profile()
        self._apply_attributes(profile, attributes, meta)
        return profile, created

    def _apply_attributes(
        self, profile: Profile, attributes: dict[str, Any], meta: Any = None
    ) -> None:
        changed = False
        for name, value in attributes.items():
            if name in IDENTIFIERS:
                changed |= self.profiles.set_identifier(profile, name, value)
            elif name in PLAIN_FIELDS and profile.fields.get(name) != value:
                profile.fields[name], changed = value, True
            elif name in ("properties", "location"):
                changed |= merge_into(getattr(profile, name), value)
        if isinstance(meta, dict):
            changed |= patch_properties(profile.properties, meta.get("patch_properties"))
        if changed:
            profile.updated = self.clock.now()

    def _profile_lists(self, profile_id: str) -> list[str]:
        return sorted(
            list_id
            for list_id, klaviyo_list in self.lists.items()
            if profile_id in klaviyo_list.members
        )

    def _subscribe(
        self,
        profile: Profile,
        consented_at: float,
        method: str,
        source: str | None,
        list_id: str | None = None,
    ) -> None:
        """Bulk Subscribe: consent SUBSCRIBED, and UNSUBSCRIBE/spam/manual suppressions lifted."""
        now = self.clock.now()
        profile.consent, profile.consent_timestamp, profile.consent_updated = (
            "SUBSCRIBED",
            consented_at,
            now,
        )
        profile.method, profile.method_detail, profile.custom_method_detail = method, "", source
        profile.double_optin = False
        profile.suppressions = [
            s for s in profile.suppressions if s["reason"] not in LIFTED_BY_SUBSCRIBE
        ]
        if list_id:
            profile.list_suppressions = [
                s for s in profile.list_suppressions if s["list_id"] != list_id
            ]
            self.lists[list_id].members.setdefault(profile.id, now)
        profile.updated = now
        self._record_event(
            SUBSCRIBED_METRIC,
            profile,
            now,
            {"List": list_id} if list_id else {},
            unique_id=str(uuid.uuid4()),
        )

    def _suppress(self, profile: Profile, moment: float, reason: str, method: str) -> None:
        if reason in REVOKES_CONSENT:
            profile.consent, profile.consent_timestamp = "UNSUBSCRIBED", moment
            profile.method, profile.method_detail = method, ""
        profile.consent_updated = profile.updated = self.clock.now()
        profile.suppressions = [s for s in profile.suppressions if s["reason"] != reason]
        profile.suppressions.append({"reason": reason, "timestamp": moment})
        metric = METRIC_FOR_SUPPRESSION.get(reason)
        if metric:
            self._record_event(
                metric, profile, moment, {"Method": method}, unique_id=str(uuid.uuid4())
            )

    def _sms_consent(self, profile: Profile, consent: str, moment: float, method: str) -> None:
        """SMS marketing consent given or withdrawn, with Klaviyo's event for it."""
        sms = profile.sms
        sms.consent, sms.timestamp, sms.method, sms.method_detail = consent, moment, method, ""
        sms.updated = profile.updated = self.clock.now()
        metric = SMS_SUBSCRIBED_METRIC if consent == "SUBSCRIBED" else SMS_UNSUBSCRIBED_METRIC
        self._record_event(metric, profile, moment, {"Method": method}, unique_id=str(uuid.uuid4()))

    def _unsubscribe_from_list(self, profile: Profile, list_id: str, moment: float) -> None:
        self.lists[list_id].members.pop(profile.id, None)
        profile.list_suppressions.append(
            {"list_id": list_id, "reason": "USER_SUPPRESSED", "timestamp": moment}
        )
        profile.updated = self.clock.now()
        self._record_event(
            "Unsubscribed from List",
            profile,
            moment,
            {"List": list_id},
            unique_id=str(uuid.uuid4()),
        )

    def _new_list(self, name: str, opt_in_process: str, list_id: str | None = None) -> KlaviyoList:
        now = self.clock.now()
        klaviyo_list = KlaviyoList(
            list_id or self._short_id(self.lists), name, now, now, opt_in_process
        )
        self.lists[klaviyo_list.id] = klaviyo_list
        return klaviyo_list

    def _list(self, request: Request) -> KlaviyoList:
        klaviyo_list = self.lists.get(request.params["list_id"])
        if klaviyo_list is None:
            raise not_found_error(f"A list with id {request.params['list_id']} does not exist.")
        return klaviyo_list

    def _metric(self, name: str) -> Metric:
        """The metric of that name, created on first use (as Klaviyo does)."""
        metric_id = self.metric_ids_by_name.get(name)
        if metric_id is None:
            integration = KLAVIYO_INTEGRATION if name in KLAVIYO_METRICS else API_INTEGRATION
            metric = Metric(self._short_id(self.metrics), name, self.clock.now(), integration)
            self.metrics[metric.id], self.metric_ids_by_name[name] = metric, metric.id
            metric_id = metric.id
        return self.metrics[metric_id]

    def _event_key(
        self, metric_name: str, profile_id: str, time: float, unique_id: str | None
    ) -> tuple:
        """Klaviyo's de-duplication key: without unique_id, the time to the second stands in."""
        return (metric_name, profile_id, unique_id or str(int(time)))

    def _record_event(
        self,
        metric_name: str,
        profile: Profile,
        time: float,
        properties: dict[str, Any],
        value: float | None = None,
        currency: str | None = None,
        unique_id: str | None = None,
    ) -> Event | None:
        """Store an event unless one with the same metric, profile and unique_id exists."""
        key = self._event_key(metric_name, profile.id, time, unique_id)
        if key in self.event_keys:
            return None
        self.event_keys.add(key)
        metric = self._metric(metric_name)
        event = Event(
            self._next_id(),
            str(uuid.uuid4()),
            metric.id,
            profile.id,
            float(int(time)),
            properties,
            value,
            currency,
            unique_id,
        )
        self.event_log.append(event)
        profile.last_event_date = max(profile.last_event_date or 0.0, event.time)
        return event

    def _event_time_errors(self, raw: Any, pointer: str) -> list[dict[str, Any]]:
        if raw is None:
            return []
        try:
            moment = parse_datetime(raw) if isinstance(raw, str) else None
        except ValueError:
            moment = None
        if moment is None:
            return [invalid_object(f"'{raw}' is not a valid datetime.", pointer)]
        if not EPOCH_1990 < moment <= self.clock.now() + YEAR_SECONDS:
            return [
                invalid_object(
                    "The time must be after 1990 and at most 1 year in the future.", pointer
                )
            ]
        return []
