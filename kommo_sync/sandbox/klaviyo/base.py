"""The HTTP side every Klaviyo endpoint shares: auth, revision, media type, rate limits, injected
failures, JSON:API request bodies, cursor paging and ids."""

from __future__ import annotations

import base64
import json
import math
import random
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from kommo_sync.clock import Clock
from kommo_sync.sandbox.klaviyo.errors import (
    ApiError,
    InjectedResponse,
    default_failure,
    error_object,
    invalid,
    not_found_error,
    throttled,
)
from kommo_sync.sandbox.klaviyo.records import (
    Event,
    ImportJob,
    KlaviyoList,
    Metric,
    ProfileStore,
)
from kommo_sync.sandbox.klaviyo.rules import (
    ACCEPTED_MEDIA_TYPES,
    JSONAPI,
    REVISION_FORMAT,
    SHORT_ID_ALPHABET,
    SLOW_OPTIONS,
    TIERS,
    ulid,
)
from kommo_sync.sandbox.network import KlaviyoJobs
from kommo_sync.sandbox.server import App, Request, Response, SlidingWindow


class RateLimit:
    """Klaviyo's windows for one endpoint: burst per second, steady per minute, maybe per day."""

    def __init__(self, clock: Clock, tier: str, daily: int | None = None):
        burst, steady = TIERS[tier]
        self.windows = [SlidingWindow(clock, burst, 1.0), SlidingWindow(clock, steady, 60.0)]
        if daily:
            self.windows.append(SlidingWindow(clock, daily, 86400.0))

    def retry_after(self) -> int | None:
        """None when the request is admitted, else whole seconds until every window has room."""
        wait = max(self._wait(window) for window in self.windows)
        if wait > 0:
            return max(1, math.ceil(wait))
        if not all(window.admit() for window in self.windows):
            return 1
        return None

    @staticmethod
    def _wait(window: SlidingWindow) -> float:
        with window.lock:
            now = window.clock.monotonic()
            while window.stamps and window.stamps[0] <= now - window.window:
                window.stamps.popleft()
            if len(window.stamps) < window.limit:
                return 0.0
            return window.stamps[0] + window.window - now


class KlaviyoBase(App):
    """The account's state and the request plumbing; the endpoint classes build on it."""

    def __init__(
        self,
        clock: Clock | None = None,
        api_key: str = "pk_sandbox_0000000000000000",
        revision: str = "2026-07-15",
    ):
        super().__init__(clock)
        self.api_key, self.revision = api_key, revision
        self.profiles = ProfileStore()
        self.lists: dict[str, KlaviyoList] = {}
        self.metrics: dict[str, Metric] = {}
        self.metric_ids_by_name: dict[str, str] = {}
        self.event_log: list[Event] = []
        self.event_keys: set[tuple[str, str, str]] = set()
        self.jobs: dict[str, ImportJob] = {}
        self.pending_jobs: list[ImportJob] = []
        self.timing = KlaviyoJobs()  # how long import, subscribe and event jobs take
        # Accepted subscribe and event jobs not applied yet: (due, method name, its arguments);
        # data rather than closures, so a snapshot can pickle them.
        self.deferred: list[tuple[float, str, tuple[Any, ...]]] = []
        self.failures: deque[ApiError | Response] = deque()
        self.route_info: dict[tuple[str, str], tuple[str, str, int | None]] = {}
        self.limits: dict[str, RateLimit] = {}
        self.sequence = 0
        self.short_ids = random.Random(11)
        # Test switches: paging `links.next` points back at the served page; bulk jobs never
        # finish (imports stay queued/processing, subscribe/event jobs are never applied) or
        # finish at once; sorting a subscriptions-filtered profile query is refused; no rate
        # limits (for clients that do not pace themselves, as in-process runs on a clock that
        # never waits).
        self.next_link_loop = False
        self.jobs_never_finish = False
        self.jobs_finish_at_once = False
        self.refuse_sort_with_subscription_filter = False
        self.rate_limited = True
        # An age-gated account: SMS consent needs a date of birth at least AGE_GATE_YEARS ago.
        self.age_gated = False

    def before(self, request: Request) -> Response | None:
        try:
            self._fail_injected()
            self._check_auth(request)
            self._check_revision(request)
            self._check_media_type(request)
            self._check_rate_limit(request)
        except ApiError as exc:
            return exc.response()
        except InjectedResponse as injected:
            return injected.response
        return None

    def not_found(self, request: Request, method_mismatch: bool = False) -> Response:
        if method_mismatch:
            return ApiError(
                405,
                [
                    error_object(
                        405,
                        "method_not_allowed",
                        "Method not allowed.",
                        f'Method "{request.method}" not allowed.',
                    )
                ],
            ).response()
        return not_found_error(f"No route for {request.method} {request.path}.").response()

    def failure_response(self, status: int, body: Any) -> Response:
        failure = self._failure(status, body)
        return failure.response() if isinstance(failure, ApiError) else failure

    def _failure(self, status: int, body: dict[str, Any] | str | None) -> ApiError | Response:
        if body is None:
            return default_failure(status)
        if isinstance(body, str):
            return Response(status, None, "text/html", raw=body.encode("utf-8"))
        headers = {"Retry-After": "1"} if status == 429 else {}
        return Response(status, body, JSONAPI, headers)

    def _fail_injected(self) -> None:
        with self.lock:
            failure = self.failures.popleft() if self.failures else None
        if isinstance(failure, ApiError):
            raise failure
        if failure is not None:
            raise InjectedResponse(failure)

    def _check_auth(self, request: Request) -> None:
        scheme, _, key = (request.header("authorization") or "").partition(" ")
        if scheme != "Klaviyo-API-Key" or not key.strip():
            raise ApiError(
                401,
                [
                    error_object(
                        401,
                        "not_authenticated",
                        "Authentication credentials were not provided.",
                        "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.",
                    )
                ],
            )
        if key.strip() != self.api_key:
            raise ApiError(
                401,
                [
                    error_object(
                        401,
                        "authentication_failed",
                        "Incorrect authentication credentials.",
                        "Incorrect authentication credentials.",
                    )
                ],
            )

    def _check_revision(self, request: Request) -> None:
        revision = request.header("revision")
        if not revision:
            raise invalid("The 'revision' header is required.", parameter="revision")
        if not REVISION_FORMAT.match(revision):
            raise invalid(
                f"Invalid revision '{revision}' (format: YYYY-MM-DD[.suffix]).",
                parameter="revision",
            )
        if revision != self.revision:
            raise not_found_error("No valid revisions found for method")

    def _check_media_type(self, request: Request) -> None:
        if not request.body:
            return
        media_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if media_type not in ACCEPTED_MEDIA_TYPES:
            raise ApiError(
                415,
                [
                    error_object(
                        415,
                        "unsupported_media_type",
                        "Unsupported media type.",
                        f'Unsupported media type "{media_type}" in request.',
                    )
                ],
            )

    def _check_rate_limit(self, request: Request) -> None:
        info = self._route_of(request) if self.rate_limited else None
        if info is None:
            return
        name, tier, daily = info
        option = SLOW_OPTIONS.get(name)
        if option and self._query_values(request, option[0]) & option[1]:
            name, tier = f"{name} ({option[2]})", option[2]
        with self.lock:
            if name not in self.limits:
                self.limits[name] = RateLimit(self.clock, tier, daily)
            limit = self.limits[name]
        seconds = limit.retry_after()
        if seconds is not None:
            raise throttled(seconds)

    def _route_of(self, request: Request) -> tuple[str, str, int | None] | None:
        for method, regex, _ in self.routes:
            if method == request.method and regex.match(request.path):
                return self.route_info[(method, regex.pattern)]
        return None

    @staticmethod
    def _query_values(request: Request, name: str) -> set[str]:
        return {
            part.strip()
            for value in request.query.get(name, [])
            for part in value.split(",")
            if part.strip()
        }

    def _data(self, request: Request, expected_type: str | None) -> Any:
        try:
            body = request.json()
        except ValueError as exc:
            raise ApiError(
                400,
                [
                    error_object(
                        400, "parse_error", "Malformed request.", f"JSON parse error - {exc}"
                    )
                ],
            ) from exc
        if not isinstance(body, dict) or "data" not in body:
            raise invalid("'data' is a required field.", "/data")
        data = body["data"]
        if expected_type and (not isinstance(data, dict) or data.get("type") != expected_type):
            raise invalid(f"The resource type must be '{expected_type}'.", "/data/type")
        return data

    def _base(self, request: Request) -> str:
        return f"http://{request.header('host') or 'localhost'}"

    def _url(self, request: Request, overrides: dict[str, str] | None = None) -> str:
        query = {name: list(values) for name, values in request.query.items()}
        query.update({name: [value] for name, value in (overrides or {}).items()})
        encoded = urlencode(query, doseq=True)
        return f"{self._base(request)}{request.path}" + (f"?{encoded}" if encoded else "")

    def _page_size(self, request: Request, default: int, maximum: int) -> int:
        raw = request.arg("page[size]")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise invalid(
                f"Page size must be an integer between 1 and {maximum}.", parameter="page[size]"
            )
        return int(raw)

    def _cursor(self, request: Request) -> tuple[str, str] | None:
        raw = request.arg("page[cursor]")
        if not raw:
            return None
        try:
            key = json.loads(base64.urlsafe_b64decode(raw.encode()).decode())
            return (str(key[0]), str(key[1]))
        except (ValueError, IndexError, TypeError) as exc:
            raise invalid("Invalid page cursor.", parameter="page[cursor]") from exc

    def _paginate(
        self,
        request: Request,
        records: Iterable[Any],
        sort_key: Callable[[Any], str],
        sizes: tuple[int, int],
        descending: bool = False,
        cap: int | None = None,
    ) -> tuple[list[Any], dict[str, str | None]]:
        """One page of `records` in (sort_key, id) order after the cursor, plus JSON:API links."""
        size = min(self._page_size(request, *sizes), cap or sizes[1])
        entries = sorted(
            (((sort_key(record), record.id), record) for record in records), key=lambda e: e[0]
        )
        cursor = self._cursor(request)
        if descending:
            end = bisect_left(entries, cursor, key=lambda e: e[0]) if cursor else len(entries)
            chunk, more = entries[max(0, end - size) : end][::-1], end > size
        else:
            start = bisect_right(entries, cursor, key=lambda e: e[0]) if cursor else 0
            chunk, more = entries[start : start + size], start + size < len(entries)
        next_url = None
        if more and chunk:
            token = base64.urlsafe_b64encode(json.dumps(list(chunk[-1][0])).encode()).decode()
            next_url = self._url(request, {"page[cursor]": token})
        if self.next_link_loop:
            next_url = self._url(request)
        return [record for _, record in chunk], {
            "self": self._url(request),
            "next": next_url,
            "prev": None,
        }

    def _sort(
        self, request: Request, allowed: dict[str, Callable[[Any], str]], default: str
    ) -> tuple[Callable[[Any], str], bool]:
        raw = request.arg("sort") or default
        name = raw.lstrip("-")
        if name not in allowed:
            raise invalid(f"'{raw}' is not a valid sort field.", parameter="sort")
        return allowed[name], raw.startswith("-")

    def _later(self, seconds: float, method: str, *args: Any) -> None:
        """Call `method(*args)` `seconds` from now on the clock (at once when 0): a job Klaviyo
        accepts with 202 and applies in the background."""
        if seconds <= 0 or self.jobs_finish_at_once:
            getattr(self, method)(*args)
            return
        self.deferred.append((self.clock.now() + seconds, method, args))
        self.deferred.sort(key=lambda entry: entry[0])

    def _apply_deferred(self, now: float) -> None:
        """Apply, in order, every deferred job due by `now` (call under the lock)."""
        while self.deferred and (self.deferred[0][0] <= now or self.jobs_finish_at_once):
            _, method, args = self.deferred.pop(0)
            getattr(self, method)(*args)

    def _next_id(self) -> str:
        self.sequence += 1
        return ulid(int(self.clock.now() * 1000), self.sequence)

    def _short_id(self, taken: dict[str, Any]) -> str:
        while True:
            candidate = "".join(self.short_ids.choice(SHORT_ID_ALPHABET) for _ in range(6))
            if candidate not in taken:
                return candidate
