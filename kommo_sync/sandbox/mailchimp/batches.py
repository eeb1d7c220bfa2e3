"""Mailchimp's /batches: queued jobs that run on the injected clock through the normal handlers,
their status, and the signed URL of the results archive."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from kommo_sync.sandbox.mailchimp.archive import build_archive, storage_error
from kommo_sync.sandbox.mailchimp.errors import ApiError, field_error, not_found
from kommo_sync.sandbox.mailchimp.members import MemberState
from kommo_sync.sandbox.mailchimp.queries import json_object
from kommo_sync.sandbox.mailchimp.records import Batch
from kommo_sync.sandbox.mailchimp.rules import (
    API_ROOT,
    ARCHIVE_PREFIX,
    ARCHIVE_URL_LIFETIME,
    BATCH_METHODS,
    JSON_CONTENT_TYPE,
    MAX_COUNT,
    iso,
)
from kommo_sync.sandbox.server import Request, Response


class BatchEndpoints(MemberState):
    """`/batches` and the archive download."""

    def _post_batch(self, request: Request) -> Response:
        """Queue a batch; batches run one at a time, as `self.timing` says (network.py)."""
        body = json_object(request)
        operations: Any = body.get("operations")  # a list once _check_operations passes
        self._check_operations(operations)
        now, timing = self.clock.now(), self.timing
        starts_at = max(now + timing.pending, self._last_batch_finish)
        batch = Batch(
            self._make_id("batch", next(self._ids)),
            operations,
            now,
            starts_at,
            starts_at + timing.base + timing.per_operation * len(operations),
        )
        self._last_batch_finish = batch.finishes_at
        self.batches[batch.id] = batch
        self._batch_queue.append(batch)
        return Response(200, self._batch_json(batch, request), JSON_CONTENT_TYPE)

    @staticmethod
    def _check_operations(operations: Any) -> None:
        """Only method and path are checked now; a non-string body fails when it runs."""
        if not isinstance(operations, list):
            raise field_error("operations", "Required fields were not provided: operations")
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict) or operation.get("method") not in BATCH_METHODS:
                raise field_error(
                    f"operations.{index}.method",
                    "Data presented is not one of "
                    "the accepted values: " + ", ".join(BATCH_METHODS) + ".",
                )
            if not isinstance(operation.get("path"), str) or not operation["path"].startswith("/"):
                raise field_error(
                    f"operations.{index}.path", "Required fields were not provided: path"
                )

    def _batch_json(self, batch: Batch, request: Request) -> dict[str, Any]:
        status, done = batch.progress(self.clock.now())
        finished = status == "finished"
        return {
            "id": batch.id,
            "status": status,
            "total_operations": len(batch.operations if batch.results is None else batch.results),
            "finished_operations": done,
            "errored_operations": batch.errored,
            "submitted_at": iso(batch.submitted_at),
            "completed_at": iso(batch.finishes_at) if finished else "",
            "response_body_url": self._archive_url(batch, request) if finished else "",
        }

    def _archive_url(self, batch: Batch, request: Request) -> str:
        """A fresh URL on every status call, valid for 10 minutes, like the real signed URL."""
        host = request.header("host") or "127.0.0.1"
        expires = int(self.clock.now() + ARCHIVE_URL_LIFETIME)
        return f"http://{host}{ARCHIVE_PREFIX}{batch.id}.tar.gz?expires={expires}"

    def _get_batch(self, request: Request) -> Response:
        batch = self.batches.get(request.params["batch_id"])
        if batch is None:
            raise not_found()
        return Response(200, self._batch_json(batch, request), JSON_CONTENT_TYPE)

    def _get_batches(self, request: Request) -> Response:
        batches = list(self.batches.values())
        return Response(
            200,
            {
                "batches": [self._batch_json(b, request) for b in self._page(batches, request)],
                "total_items": len(batches),
            },
            JSON_CONTENT_TYPE,
        )

    def _delete_batch(self, request: Request) -> Response:
        batch = self.batches.pop(request.params["batch_id"], None)
        if batch is None:
            raise not_found()
        if batch in self._batch_queue:
            self._batch_queue.remove(batch)
        return Response(204)

    def _settle_batches(self) -> None:
        """Run every queued batch whose finish time has passed, in order (call under the lock)."""
        if self.batches_never_finish:
            return
        now = self.clock.now()
        if self.jobs_finish_at_once:
            self._hurry_batches(now)
        while self._batch_queue and self._batch_queue[0].finishes_at <= now:
            self._run_batch(self._batch_queue.popleft())

    def _hurry_batches(self, now: float) -> None:
        """Make every queued batch due now (the jobs_finish_at_once switch)."""
        for batch in self._batch_queue:
            batch.starts_at, batch.finishes_at = (
                min(batch.starts_at, now),
                min(batch.finishes_at, now),
            )
        self._last_batch_finish = min(self._last_batch_finish, now)

    def _run_batch(self, batch: Batch) -> None:
        """Operations run (and are reported) in a shuffled order: the docs promise no order."""
        operations = list(batch.operations)
        self._batch_order.shuffle(operations)
        results: list[dict[str, Any]] = []
        for operation in operations:
            results.extend(self._run_operation(operation))
        batch.results = results
        batch.archive = build_archive(batch)

    def _run_operation(self, operation: dict[str, Any]) -> list[dict[str, Any]]:
        """One operation through the normal handlers; a GET without count pages through all."""
        body = operation.get("body")
        if body is not None and not isinstance(body, str):
            error = ApiError(
                400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
            )
            return [self._operation_result(operation, error.response())]
        url = urlsplit(operation["path"])
        params = operation.get("params")
        query = parse_qs(url.query)
        if isinstance(params, dict):
            query.update({str(k): [str(v)] for k, v in params.items()})
        if operation["method"] == "GET" and "count" not in query:
            return self._run_paged_get(operation, url.path, query)
        request = Request(
            operation["method"], API_ROOT + url.path, query, {}, (body or "").encode("utf-8")
        )
        return [self._operation_result(operation, self._route(request))]

    def _run_paged_get(
        self, operation: dict[str, Any], path: str, query: dict[str, list[str]]
    ) -> list[dict[str, Any]]:
        results, offset = [], 0
        while True:
            page_query = {**query, "count": [str(MAX_COUNT)], "offset": [str(offset)]}
            response = self._route(Request("GET", API_ROOT + path, page_query, {}, b""))
            results.append(self._operation_result(operation, response))
            offset += MAX_COUNT
            total = response.body.get("total_items", 0) if isinstance(response.body, dict) else 0
            if response.status != 200 or offset >= total:
                return results

    @staticmethod
    def _operation_result(operation: dict[str, Any], response: Response) -> dict[str, Any]:
        return {
            "status_code": response.status,
            "operation_id": operation.get("operation_id"),
            "response": response.encode().decode("utf-8"),
        }

    def _download_archive(self, request: Request) -> Response:
        """The results archive: no API key (a signed storage URL), 403 once the URL expired."""
        batch_id = request.params["archive"].removesuffix(".tar.gz")
        with self.lock:
            self._settle_batches()
            batch = self.batches.get(batch_id)
        if batch is None or batch.results is None:
            return storage_error(404, "NoSuchKey", "The specified key does not exist.")
        expires = request.arg("expires") or "0"
        if not expires.isdigit() or self.clock.now() > int(expires):
            return storage_error(403, "AccessDenied", "Request has expired")
        return Response(200, content_type="application/x-gzip", raw=batch.archive)
