"""A local Klaviyo (REST API, revision 2026-07-15) for tests, demos and benchmarks.

It behaves like the real API wherever the syncer can notice: JSON:API bodies and errors, the
`Klaviyo-API-Key` and `revision` headers, burst and steady rate limits per endpoint with
`Retry-After`, cursor paging with absolute `links.next`, profile upsert by any identifier with
409 on identifiers of different profiles, all-or-nothing validation of bulk requests,
bulk-import jobs that advance with the injected clock, events de-duplicated on `unique_id`,
data-privacy deletion jobs (applied at once),
and consent kept apart from list membership: only Bulk Subscribe grants consent, and it lifts
an earlier unsubscribe. Where Klaviyo's behaviour is unconfirmed the pessimistic variant is
implemented.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from kommo_sync.clock import Clock
from kommo_sync.sandbox.klaviyo.consent import ConsentEndpoints
from kommo_sync.sandbox.klaviyo.errors import ApiError
from kommo_sync.sandbox.klaviyo.events import EventEndpoints
from kommo_sync.sandbox.klaviyo.imports import ImportEndpoints
from kommo_sync.sandbox.klaviyo.lists import ListEndpoints
from kommo_sync.sandbox.klaviyo.privacy import PrivacyEndpoints
from kommo_sync.sandbox.klaviyo.profiles import ProfileEndpoints
from kommo_sync.sandbox.klaviyo.rules import PROFILE_ATTRIBUTES, as_timestamp
from kommo_sync.sandbox.klaviyo.validation import attribute_errors, has_identifier
from kommo_sync.sandbox.server import Request, Response


class KlaviyoSandbox(
    ProfileEndpoints,
    ImportEndpoints,
    ListEndpoints,
    EventEndpoints,
    ConsentEndpoints,
    PrivacyEndpoints,
):
    """In-memory Klaviyo: profiles, lists, metrics, events, bulk-import jobs behind the REST API."""

    def __init__(
        self,
        clock: Clock | None = None,
        api_key: str = "pk_sandbox_0000000000000000",
        revision: str = "2026-07-15",
    ):
        super().__init__(clock, api_key, revision)
        self._register_routes()

    def add_list(
        self, name: str, list_id: str | None = None, opt_in_process: str = "single_opt_in"
    ) -> str:
        """Seed a list; returns its id."""
        with self.lock:
            klaviyo_list = self._new_list(name, opt_in_process, list_id)
            return klaviyo_list.id

    def add_profile(
        self,
        email: str | None = None,
        phone_number: str | None = None,
        *,
        lists: Iterable[str] = (),
        subscribed: bool = False,
        **attributes: Any,
    ) -> str:
        """Seed a profile (ValueError on invalid or taken identifiers); returns its id."""
        attributes = {
            key: value
            for key, value in {"email": email, "phone_number": phone_number, **attributes}.items()
            if value is not None
        }
        with self.lock:
            errors = attribute_errors(attributes, "/data/attributes", PROFILE_ATTRIBUTES)
            if errors or not has_identifier(attributes) or self.profiles.owners(attributes):
                raise ValueError(
                    f"cannot seed profile {attributes}: {errors or 'identifier missing or taken'}"
                )
            profile = self._new_profile()
            self._apply_attributes(profile, attributes)
            for list_id in lists:
                self.lists[list_id].members[profile.id] = self.clock.now()
            if subscribed:
                self._subscribe(profile, self.clock.now(), "API", None)
            return profile.id

    def unsubscribe(
        self,
        email: str,
        at: float | str | None = None,
        reason: str = "UNSUBSCRIBE",
        method: str = "PREFERENCE_PAGE",
        list_id: str | None = None,
    ) -> str:
        """A person unsubscribes in Klaviyo (or bounces, or complains); returns the profile id.

        Global: a suppression with `reason` (UNSUBSCRIBE, SPAM_COMPLAINT, HARD_BOUNCE, …), consent
        UNSUBSCRIBED for UNSUBSCRIBE and SPAM_COMPLAINT, and the matching event ("Unsubscribed from
        Email Marketing", "Marked Email as Spam", "Bounced Email"). With `list_id`: only a list
        suppression, removal from the list and an "Unsubscribed from List" event. An unknown
        email gets a new profile.
        """
        with self.lock:
            self._finish_due_jobs()
            profile = self._profile_for_email(email)
            moment = as_timestamp(at, self.clock.now())
            if list_id:
                self._unsubscribe_from_list(profile, list_id, moment)
            else:
                self._suppress(profile, moment, reason, method)
            return profile.id

    def unsubscribe_sms(
        self, email: str, at: float | str | None = None, method: str = "TEXT", blocked: bool = False
    ) -> str:
        """A person opts out of SMS in Klaviyo (a STOP reply by default); `blocked`: the number
        is suppressed for SMS as well (a carrier deactivation). Email consent is untouched;
        "Unsubscribed from SMS Marketing" is recorded. Returns the profile id."""
        with self.lock:
            self._finish_due_jobs()
            profile = self._profile_for_email(email)
            profile.sms.blocked = profile.sms.blocked or blocked
            self._sms_consent(profile, "UNSUBSCRIBED", as_timestamp(at, self.clock.now()), method)
            return profile.id

    def add_activity(
        self,
        email: str,
        metric: str,
        at: float | str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> str | None:
        """A person's campaign activity ("Opened Email", "Clicked Email", …); returns its id."""
        with self.lock:
            self._finish_due_jobs()
            profile = self._profile_for_email(email)
            moment = as_timestamp(at, self.clock.now())
            unique_id = str(uuid.uuid4())
            event = self._record_event(
                metric, profile, moment, dict(properties or {}), unique_id=unique_id
            )
            return event.id if event else None

    def profile_by_email(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            self._finish_due_jobs()
            profile = self.profiles.find("email", email)
            return self._profile_snapshot(profile) if profile else None

    def profile_by_id(self, profile_id: str) -> dict[str, Any] | None:
        with self.lock:
            self._finish_due_jobs()
            profile = self.profiles.get(profile_id)
            return self._profile_snapshot(profile) if profile else None

    def list_members(self, list_id: str) -> set[str]:
        with self.lock:
            self._finish_due_jobs()
            return set(self.lists[list_id].members)

    def events(self, metric: str | None = None) -> list[dict[str, Any]]:
        """Stored events (after de-duplication), oldest first, optionally of one metric name."""
        with self.lock:
            self._finish_due_jobs()
            return [
                self._event_snapshot(event)
                for event in self.event_log
                if metric is None or self.metrics[event.metric_id].name == metric
            ]

    def fail_next(self, n: int, status: int, body: dict[str, Any] | str | None = None) -> None:
        """The next `n` requests fail with `status`: a JSON:API body by default, or `body`
        (a dict as JSON, a str as text/html, like Cloudflare's pages)."""
        with self.lock:
            for _ in range(n):
                self.failures.append(self._failure(status, body))

    def _register_routes(self) -> None:
        add = self._add_route
        add("GET", "/api/accounts", self._get_accounts, "XS")
        add("POST", "/api/profile-import", self._import_profile, "L")
        add("GET", "/api/profiles", self._get_profiles, "L")
        add("GET", "/api/profiles/{profile_id}", self._get_profile, "L")
        add("POST", "/api/profile-bulk-import-jobs", self._create_import_job, "M")
        add("GET", "/api/profile-bulk-import-jobs", self._get_import_jobs, "M")
        add("GET", "/api/profile-bulk-import-jobs/{job_id}", self._get_import_job, "M")
        add(
            "GET",
            "/api/profile-bulk-import-jobs/{job_id}/import-errors",
            self._get_import_errors,
            "M",
        )
        add("GET", "/api/profile-bulk-import-jobs/{job_id}/profiles", self._get_job_profiles, "M")
        add(
            "GET",
            "/api/profile-bulk-import-jobs/{job_id}/relationships/profiles",
            self._get_job_profile_ids,
            "M",
        )
        add("POST", "/api/lists", self._create_list, "M", daily=150)
        add("GET", "/api/lists", self._get_lists, "L")
        add("GET", "/api/lists/{list_id}", self._get_list, "L")
        add("POST", "/api/lists/{list_id}/relationships/profiles", self._add_to_list, "M")
        add("DELETE", "/api/lists/{list_id}/relationships/profiles", self._remove_from_list, "M")
        add("GET", "/api/lists/{list_id}/relationships/profiles", self._get_list_profile_ids, "L")
        add("GET", "/api/lists/{list_id}/profiles", self._get_list_profiles, "L")
        add("POST", "/api/events", self._create_event, "XL")
        add("GET", "/api/events", self._get_events, "XL")
        add("POST", "/api/event-bulk-create-jobs", self._bulk_create_events, "M")
        add("GET", "/api/metrics", self._get_metrics, "M")
        add("GET", "/api/metrics/{metric_id}", self._get_metric, "M")
        add("POST", "/api/profile-subscription-bulk-create-jobs", self._bulk_subscribe, "L")
        add("POST", "/api/profile-subscription-bulk-delete-jobs", self._bulk_unsubscribe, "L")
        add("POST", "/api/data-privacy-deletion-jobs", self._request_deletion, "S")

    def _add_route(
        self,
        method: str,
        pattern: str,
        handler: Callable[[Request], Response],
        tier: str,
        daily: int | None = None,
    ) -> None:
        self.route(method, pattern, self._guarded(handler))
        self.route_info[(method, self.routes[-1][1].pattern)] = (f"{method} {pattern}", tier, daily)

    def _guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Run a handler under the lock, after due jobs finish; ApiError becomes its response."""

        def run(request: Request) -> Response:
            with self.lock:
                self._finish_due_jobs()
                try:
                    return handler(request)
                except ApiError as exc:
                    return exc.response()

        return run
