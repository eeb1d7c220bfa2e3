"""Klaviyo's profile bulk-import jobs: created, advanced by the injected clock, read back."""

from __future__ import annotations

import uuid
from typing import Any

from kommo_sync.sandbox.klaviyo.errors import (
    ApiError,
    error_object,
    invalid,
    invalid_object,
    not_found_error,
)
from kommo_sync.sandbox.klaviyo.filters import JOB_FILTERS, parse_filter, satisfies
from kommo_sync.sandbox.klaviyo.records import ImportJob, Keyed, Profile
from kommo_sync.sandbox.klaviyo.resources import KlaviyoResources
from kommo_sync.sandbox.klaviyo.rules import (
    JSONAPI,
    MAX_BULK_IMPORT_BYTES,
    MAX_BULK_IMPORT_PROFILES,
    MAX_PROFILE_BYTES,
    PROFILE_ATTRIBUTES,
    sort_text,
)
from kommo_sync.sandbox.klaviyo.validation import attribute_errors, has_identifier, json_size
from kommo_sync.sandbox.server import Request, Response


class ImportEndpoints(KlaviyoResources):
    """`/api/profile-bulk-import-jobs` and what hangs off one job."""

    def _create_import_job(self, request: Request) -> Response:
        if len(request.body) > MAX_BULK_IMPORT_BYTES:
            raise ApiError(
                413,
                [
                    error_object(
                        413,
                        "request_too_large",
                        "Request too large.",
                        "The maximum allowed payload size is 5MB.",
                    )
                ],
            )
        data = self._data(request, "profile-bulk-import-job")
        rows = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_BULK_IMPORT_PROFILES:
            raise invalid(
                f"Between 1 and {MAX_BULK_IMPORT_PROFILES} profiles are allowed per job.",
                "/data/attributes/profiles/data",
            )
        list_ids = self._job_list_ids(data)
        errors = [
            error for index, row in enumerate(rows) for error in self._import_row_errors(index, row)
        ]
        if errors:
            raise ApiError(400, errors)
        job = ImportJob(self._next_id(), self.clock.now(), rows, list_ids, self.timing)
        self.jobs[job.id] = job
        self.pending_jobs.append(job)
        return Response(
            202,
            {"data": self._job_resource(request, job), "links": {"self": self._url(request)}},
            JSONAPI,
        )

    def _job_list_ids(self, data: dict[str, Any]) -> list[str]:
        entries: Any = (((data.get("relationships") or {}).get("lists") or {}).get("data")) or []
        list_ids: list[Any] = [entry.get("id") for entry in entries if isinstance(entry, dict)]
        for list_id in list_ids:
            if list_id not in self.lists:
                raise invalid(f"List ID {list_id} does not exist.", "/data")
        return list_ids

    def _import_row_errors(self, index: int, row: Any) -> list[dict[str, Any]]:
        """Synchronous validation of one row; any error refuses the whole job (as observed)."""
        pointer = f"/data/attributes/profiles/data/{index}"
        if not isinstance(row, dict) or row.get("type") != "profile":
            return [invalid_object("The resource type must be 'profile'.", f"{pointer}/type")]
        if json_size(row) > MAX_PROFILE_BYTES:
            return [
                invalid_object("The maximum allowed payload size per-profile is 100KB.", pointer)
            ]
        attributes: Any = row.get("attributes")
        errors = attribute_errors(attributes, f"{pointer}/attributes", PROFILE_ATTRIBUTES)
        if not errors and not row.get("id") and not has_identifier(attributes):
            errors.append(
                invalid_object(
                    "One of 'email', 'phone_number' or 'external_id' is required.",
                    f"{pointer}/attributes",
                )
            )
        return errors

    def _finish_due_jobs(self) -> None:
        """Complete every job whose processing time has passed on the injected clock, then
        apply the subscribe and event jobs that are due."""
        if self.jobs_never_finish:
            return
        for job in self.pending_jobs:
            job.rushed = job.rushed or self.jobs_finish_at_once
        now = self.clock.now()
        due = sorted(
            (job for job in self.pending_jobs if job.finishes <= now), key=lambda job: job.finishes
        )
        for job in due:
            self.pending_jobs.remove(job)
            self._run_import_job(job)
            job.completed_at = job.finishes
        self._apply_deferred(now)

    def _run_import_job(self, job: ImportJob) -> None:
        for index, row in enumerate(job.rows):
            try:
                profile, _ = self._upsert(row.get("id"), row["attributes"], row.get("meta"))
            except ApiError as exc:
                job.errors.append(self._import_error(index, row, exc))
                continue
            job.profile_ids.append(profile.id)
            for list_id in job.list_ids:
                self.lists[list_id].members.setdefault(profile.id, job.finishes)

    def _import_error(self, index: int, row: dict[str, Any], exc: ApiError) -> dict[str, Any]:
        error = exc.errors[0]
        return {
            "type": "import-error",
            "id": str(uuid.uuid4()),
            "attributes": {
                "code": error["code"],
                "title": error["title"],
                "detail": error["detail"],
                "source": {"pointer": f"/data/attributes/profiles/data/{index}"},
                "original_payload": row.get("attributes"),
            },
        }

    def _job(self, request: Request) -> ImportJob:
        job = self.jobs.get(request.params["job_id"])
        if job is None:
            raise not_found_error(
                f"A profile bulk import job with id {request.params['job_id']} does not exist."
            )
        return job

    def _get_import_job(self, request: Request) -> Response:
        job = self._job(request)
        body: dict[str, Any] = {
            "data": self._job_resource(request, job),
            "links": {"self": self._url(request)},
        }
        if "lists" in self._query_values(request, "include"):
            body["included"] = [self._list_resource(request, self.lists[i]) for i in job.list_ids]
        return Response(200, body, JSONAPI)

    def _get_import_jobs(self, request: Request) -> Response:
        conditions = parse_filter(request.arg("filter"), JOB_FILTERS)
        raw_sort = request.arg("sort") or "created_at"
        if raw_sort.lstrip("-") != "created_at":
            raise invalid(f"'{raw_sort}' is not a valid sort field.", parameter="sort")
        now = self.clock.now()
        matching = [
            job
            for job in self.jobs.values()
            if all(satisfies([job.status(now)], c) for c in conditions)
        ]
        page, links = self._paginate(
            request,
            matching,
            lambda job: sort_text(job.created),
            (20, 100),
            raw_sort.startswith("-"),
        )
        return Response(
            200,
            {"data": [self._job_resource(request, job) for job in page], "links": links},
            JSONAPI,
        )

    def _get_import_errors(self, request: Request) -> Response:
        job = self._job(request)
        page, links = self._paginate(
            request,
            [Keyed(e["id"], str(i).zfill(6), e) for i, e in enumerate(job.errors)],
            lambda keyed: keyed.key,
            (20, 100),
        )
        return Response(200, {"data": [keyed.item for keyed in page], "links": links}, JSONAPI)

    def _job_profiles(self, request: Request) -> tuple[list[Profile], dict[str, str | None]]:
        job = self._job(request)
        keyed = [
            Keyed(pid, str(i).zfill(6), self.profiles.by_id[pid])
            for i, pid in enumerate(job.profile_ids)
        ]
        page, links = self._paginate(request, keyed, lambda k: k.key, (20, 100))
        return [k.item for k in page], links

    def _get_job_profiles(self, request: Request) -> Response:
        profiles, links = self._job_profiles(request)
        subscriptions = self._wants_subscriptions(request)
        data = [
            self._profile_resource(request, p, subscriptions, self._profile_fields(request))
            for p in profiles
        ]
        return Response(200, {"data": data, "links": links}, JSONAPI)

    def _get_job_profile_ids(self, request: Request) -> Response:
        profiles, links = self._job_profiles(request)
        return Response(
            200,
            {"data": [{"type": "profile", "id": p.id} for p in profiles], "links": links},
            JSONAPI,
        )
