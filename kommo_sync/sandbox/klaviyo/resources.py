"""Klaviyo's JSON:API resources: how profiles, lists, events, metrics and jobs are rendered."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.klaviyo.records import Event, ImportJob, KlaviyoList, Metric, Profile
from kommo_sync.sandbox.klaviyo.rules import (
    IDENTIFIERS,
    JOB_LIFETIME_SECONDS,
    PLAIN_FIELDS,
    iso,
    location_block,
)
from kommo_sync.sandbox.klaviyo.state import KlaviyoState
from kommo_sync.sandbox.server import Request


class KlaviyoResources(KlaviyoState):
    """Records rendered as JSON:API resources (and as plain snapshots for tests)."""

    def _profile_resource(
        self,
        request: Request,
        profile: Profile,
        subscriptions: bool = False,
        fields: set[str] | None = None,
    ) -> dict[str, Any]:
        base = self._base(request)
        attributes = self._profile_attributes(profile, subscriptions)
        if fields:
            attributes = {name: value for name, value in attributes.items() if name in fields}
        related: dict[str, dict[str, Any]] = {
            name: {
                "links": {
                    "self": f"{base}/api/profiles/{profile.id}/relationships/{name}/",
                    "related": f"{base}/api/profiles/{profile.id}/{name}/",
                }
            }
            for name in ("lists", "segments")
        }
        return {
            "type": "profile",
            "id": profile.id,
            "attributes": attributes,
            "relationships": related,
            "links": {"self": f"{base}/api/profiles/{profile.id}/"},
        }

    def _profile_attributes(self, profile: Profile, subscriptions: bool) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            name: profile.fields.get(name) for name in IDENTIFIERS + PLAIN_FIELDS
        }
        attributes.update(
            created=iso(profile.created),
            updated=iso(profile.updated),
            last_event_date=iso(profile.last_event_date),
            location=location_block(profile.location),
            properties=dict(profile.properties),
        )
        if subscriptions:
            attributes["subscriptions"] = self._subscriptions_block(profile)
        return attributes

    def _subscriptions_block(self, profile: Profile) -> dict[str, Any]:
        marketing = {
            "can_receive_email_marketing": not profile.suppressions,
            "consent": profile.consent,
            "consent_timestamp": iso(profile.consent_timestamp),
            "last_updated": iso(profile.consent_updated),
            "method": profile.method,
            "method_detail": profile.method_detail,
            "custom_method_detail": profile.custom_method_detail,
            "double_optin": profile.double_optin,
            "suppression": [
                {"reason": s["reason"], "timestamp": iso(s["timestamp"])}
                for s in profile.suppressions
            ],
            "list_suppressions": [
                {"list_id": s["list_id"], "reason": s["reason"], "timestamp": iso(s["timestamp"])}
                for s in profile.list_suppressions
            ],
        }
        consent = profile.sms
        sms = {
            "marketing": {
                "can_receive_sms_marketing": consent.consent == "SUBSCRIBED"
                and not consent.blocked,
                "consent": consent.consent,
                "consent_timestamp": iso(consent.timestamp),
                "method": consent.method,
                "method_detail": consent.method_detail,
                "last_updated": iso(consent.updated),
            }
        }
        return {"email": {"marketing": marketing}, "sms": sms}

    def _profile_snapshot(self, profile: Profile) -> dict[str, Any]:
        return {
            "id": profile.id,
            **self._profile_attributes(profile, subscriptions=True),
            "lists": self._profile_lists(profile.id),
        }

    def _wants_subscriptions(self, request: Request) -> bool:
        return "subscriptions" in self._query_values(request, "additional-fields[profile]")

    def _profile_fields(self, request: Request) -> set[str] | None:
        return self._query_values(request, "fields[profile]") or None

    def _list_resource(
        self, request: Request, klaviyo_list: KlaviyoList, profile_count: bool = False
    ) -> dict[str, Any]:
        base = self._base(request)
        attributes: dict[str, Any] = {
            "name": klaviyo_list.name,
            "created": iso(klaviyo_list.created),
            "updated": iso(klaviyo_list.updated),
            "opt_in_process": klaviyo_list.opt_in_process,
        }
        if profile_count:
            attributes["profile_count"] = len(klaviyo_list.members)
        return {
            "type": "list",
            "id": klaviyo_list.id,
            "attributes": attributes,
            "links": {"self": f"{base}/api/lists/{klaviyo_list.id}/"},
        }

    def _event_properties(self, event: Event) -> dict[str, Any]:
        extra: dict[str, Any] = {"$event_id": event.unique_id or str(int(event.time))}
        if event.value is not None:
            extra["$value"] = event.value
        if event.value_currency:
            extra["$value_currency"] = event.value_currency
        return {**event.properties, **extra}

    def _event_snapshot(self, event: Event) -> dict[str, Any]:
        profile = self.profiles.by_id[event.profile_id]
        return {
            "id": event.id,
            "metric": self.metrics[event.metric_id].name,
            "profile_id": event.profile_id,
            "email": profile.fields.get("email"),
            "time": event.time,
            "datetime": iso(event.time),
            "properties": dict(event.properties),
            "value": event.value,
            "value_currency": event.value_currency,
            "unique_id": event.unique_id,
        }

    def _event_resource(self, request: Request, event: Event) -> dict[str, Any]:
        base = self._base(request)
        event_url = f"{base}/api/events/{event.id}"
        related: dict[str, dict[str, Any]] = {
            "profile": {
                "data": {"type": "profile", "id": event.profile_id},
                "links": {
                    "self": f"{event_url}/relationships/profile/",
                    "related": f"{event_url}/profile/",
                },
            },
            "metric": {
                "data": {"type": "metric", "id": event.metric_id},
                "links": {
                    "self": f"{event_url}/relationships/metric/",
                    "related": f"{event_url}/metric/",
                },
            },
        }
        attributes = {
            "timestamp": int(event.time),
            "event_properties": self._event_properties(event),
            "datetime": iso(event.time),
            "uuid": event.uuid,
        }
        return {
            "type": "event",
            "id": event.id,
            "attributes": attributes,
            "relationships": related,
            "links": {"self": f"{event_url}/"},
        }

    def _metric_resource(self, request: Request, metric: Metric) -> dict[str, Any]:
        return {
            "type": "metric",
            "id": metric.id,
            "attributes": {
                "name": metric.name,
                "created": iso(metric.created),
                "updated": iso(metric.created),
                "integration": dict(metric.integration),
            },
            "links": {"self": f"{self._base(request)}/api/metrics/{metric.id}/"},
        }

    def _job_resource(self, request: Request, job: ImportJob) -> dict[str, Any]:
        base, now = self._base(request), self.clock.now()
        status = job.status(now)
        done = status == "complete"
        job_url = f"{base}/api/profile-bulk-import-jobs/{job.id}"
        related: dict[str, dict[str, Any]] = {
            name: {
                "links": {
                    "self": f"{job_url}/relationships/{name}/",
                    "related": f"{job_url}/{name}/",
                }
            }
            for name in ("lists", "profiles", "import-errors")
        }
        related["lists"]["data"] = [{"type": "list", "id": list_id} for list_id in job.list_ids]
        attributes = {
            "status": status,
            "created_at": iso(job.created),
            "total_count": len(job.rows),
            "completed_count": len(job.profile_ids) if done else 0,
            "failed_count": len(job.errors) if done else 0,
            "completed_at": iso(job.completed_at),
            "expires_at": iso(job.created + JOB_LIFETIME_SECONDS),
            "started_at": iso(job.started) if status != "queued" else None,
        }
        return {
            "type": "profile-bulk-import-job",
            "id": job.id,
            "attributes": attributes,
            "relationships": related,
            "links": {"self": f"{job_url}/"},
        }
