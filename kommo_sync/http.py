"""One HTTP base for every vendor: session reuse, timeouts, one retry policy, pacing, error kinds.

Vendor clients are thin layers over `HttpClient`: they give it a base URL, auth headers, a pacing
rate or a connection bound, and a function that reads the vendor's error body. Everything that
waits goes through the injected Clock.
"""

from __future__ import annotations

import email.utils
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from kommo_sync.clock import Clock
from kommo_sync.errors import FatalError, OutcomeUnknown, RequestRefused, VendorDown
from kommo_sync.failures import SERVER_FAULTS, Kind, classify
from kommo_sync.pacing import Pacer, SlotSchedule

log = logging.getLogger("kommo_sync.http")


class _Transient(Exception):
    """One failed attempt the policy may retry; carries the server's wait hint. `processed`:
    the request may have reached the vendor (so a write that is not safe to repeat is not)."""

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        status: int | None = None,
        processed: bool = True,
    ):
        super().__init__(reason)
        self.reason, self.retry_after, self.status, self.processed = (
            reason,
            retry_after,
            status,
            processed,
        )


NOT_SENT = (requests.exceptions.ConnectTimeout,)
HOLD_AFTER_429 = 1.0  # seconds every thread waits after a 429 that names no wait


def parse_retry_after(value: str | None, clock: Clock) -> float | None:
    """Retry-After as seconds or an HTTP date, per RFC 9110."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - clock.now()) if parsed else None


def _short(path: str) -> str:
    """A path for messages: a full URL loses its query (signed archive links, cursors)."""
    return path.split("?", 1)[0]


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def describe_error(response: requests.Response) -> str:
    """The most useful sentence a vendor error body holds (problem+json, JSON:API or text)."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "").strip()[
            :300
        ] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("detail") or first.get("title") or first.get("message") or first)
        parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
        if parts:
            return ": ".join(dict.fromkeys(parts))
    return str(body)[:300]


class Traffic:
    """Requests sent and 429s received per vendor, by every client of this process (the CLI runs
    one sync at a time; metrics take the difference across a run)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()

    def add(self, vendor: str, what: str) -> None:
        with self.lock:
            self.counts[(vendor, what)] += 1

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self.lock:
            return Counter(self.counts)


TRAFFIC = Traffic()


class Streak:
    """Answers in a row (429s) shared by the threads of one client: each read-modify-write is
    done under the lock, so no answer is lost and the limit trips at the right one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0

    def add(self) -> int:
        with self.lock:
            self.value += 1
            return self.value

    def reset(self) -> None:
        with self.lock:
            self.value = 0


@dataclass
class HttpClient:
    """A vendor's HTTP session: call `request`; it paces, retries, and raises our error kinds."""

    base_url: str
    vendor: str
    headers: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | requests.auth.AuthBase | None = None
    clock: Clock = field(default_factory=Clock)
    rate_per_second: float | None = None
    schedule: SlotSchedule | None = None  # where starts are booked; None: this process alone
    max_connections: int = 4
    max_attempts: int = 5
    max_consecutive_429: int = 5
    max_wait: float = 120.0
    timeout: float = 60.0
    retry_after_from_body: Callable[[requests.Response], float | None] | None = None
    auth_hint: str = "check the API key"
    expect_json: bool = True

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(self.headers)
        if self.auth:
            self.session.auth = self.auth
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=self.max_connections
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.pacer = Pacer(self.rate_per_second, self.clock, self.schedule)
        self.slots = threading.BoundedSemaphore(self.max_connections)
        self.too_many = Streak()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        allow: tuple[int, ...] = (),
        headers: dict[str, str] | None = None,
        repeatable: bool = True,
        need_body: bool = False,
    ) -> requests.Response:
        """Send with the retry policy; 2xx and `allow`ed statuses return, the rest raise.

        `repeatable=False` marks a write that must not be sent twice (it creates something):
        when it may have been applied (reset or timeout after sending, 5xx, unreadable answer)
        it raises OutcomeUnknown instead of being retried, and the caller reads back.
        `need_body`: a 2xx without a body (a 204 where one is due) is a failed attempt."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self.clock.sleep,
            reraise=True,
        )
        try:
            return retrying(
                self._attempt, method, path, params, json, allow, headers, repeatable, need_body
            )
        except _Transient as exc:
            raise VendorDown(
                f"{self.vendor}: {exc.reason} (after {self.max_attempts} attempts); "
                "the next run continues"
            ) from None

    def get_json(self, path: str, params: Any = None, allow_empty: bool = False) -> Any:
        """GET returning the parsed body; None for a 204 only when `allow_empty`."""
        response = self.request("GET", path, params=params, need_body=not allow_empty)
        return response.json() if response.status_code != 204 and response.content else None

    def _attempt(
        self,
        method: str,
        path: str,
        params: Any,
        body: Any,
        allow: tuple[int, ...],
        headers: dict[str, str] | None,
        repeatable: bool,
        need_body: bool,
    ) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        self.clock.check()  # before each attempt: a safe point to stop at
        try:
            with self.slots:
                self.pacer.wait_turn()
                started = self.clock.monotonic()
                TRAFFIC.add(self.vendor, "requests")
                try:
                    response = self.session.request(
                        method, url, params=params, json=body, headers=headers, timeout=self.timeout
                    )
                except NOT_SENT as exc:
                    raise _Transient(
                        f"{type(exc).__name__} on {method} {_short(path)}", processed=False
                    ) from None
                except requests.RequestException as exc:
                    raise _Transient(f"{type(exc).__name__} on {method} {_short(path)}") from None
            log.debug("%s %s %s -> %s", self.vendor, method, _short(path), response.status_code)
            if method == "GET" and response.status_code < 400:
                self.pacer.answered(self.clock.monotonic() - started)
            return self._check(response, method, path, allow, need_body)
        except _Transient as exc:
            if not repeatable and exc.processed:
                raise OutcomeUnknown(
                    f"{self.vendor}: {exc.reason}; whether it was applied is unknown"
                ) from None
            raise

    def _check(
        self,
        response: requests.Response,
        method: str,
        path: str,
        allow: tuple[int, ...],
        need_body: bool,
    ) -> requests.Response:
        status = response.status_code
        if status == 429:
            TRAFFIC.add(self.vendor, "429")
            return self._too_many(response)
        self.too_many.reset()
        if status < 400 or status in allow:
            return self._readable(response, method, path, need_body)
        reason = describe_error(response)
        where = f"HTTP {status} on {method} {_short(path)}"
        if status in SERVER_FAULTS:  # retried here; 429 is handled above
            raise _Transient(f"{where}: {reason}", self._server_wait(response), status)
        verdict = classify(self.vendor, status, reason)
        if verdict.kind is Kind.FATAL:
            hint = self.auth_hint if status == 401 else verdict.why
            raise FatalError(
                f"{self.vendor} refused {method} {_short(path)} (HTTP {status}: {reason}); {hint}"
            )
        raise RequestRefused(
            reason,
            status,
            _json_or_none(response),
            f"{self.vendor} refused {method} {_short(path)}",
        )

    def _readable(
        self, response: requests.Response, method: str, path: str, need_body: bool
    ) -> requests.Response:
        """A JSON answer that does not parse (HTML, cut JSON) or a missing body is a failed
        attempt; the parsed body is kept, so callers' `.json()` costs nothing more."""
        if not response.content:
            if need_body:
                raise _Transient(
                    f"HTTP {response.status_code} without the body due on {method} {_short(path)}"
                )
            return response
        if not self.expect_json:
            return response
        try:
            parsed = response.json()
        except ValueError:
            raise _Transient(
                f"an unreadable answer (not JSON) to {method} {_short(path)}"
            ) from None
        response.json = lambda **_: parsed  # type: ignore[method-assign]  # parsed once, read often
        return response

    def _too_many(self, response: requests.Response) -> requests.Response:
        streak = self.too_many.add()
        wait = self._server_wait(response)
        self.pacer.hold(min(wait, self.max_wait) if wait is not None else HOLD_AFTER_429)
        if streak >= self.max_consecutive_429:
            raise VendorDown(
                f"{self.vendor} answered 429 Too Many Requests {streak} times "
                "in a row; the run stopped to avoid an IP block and the next run continues"
            )
        if wait is not None and wait > self.max_wait:
            raise VendorDown(
                f"{self.vendor} asked to wait {wait:.0f} s after a 429; the run stopped "
                "and the next run continues"
            )
        raise _Transient("HTTP 429 Too Many Requests", wait, 429, processed=False)

    def _server_wait(self, response: requests.Response) -> float | None:
        header = parse_retry_after(response.headers.get("Retry-After"), self.clock)
        if header is not None:
            return header
        return self.retry_after_from_body(response) if self.retry_after_from_body else None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        if hinted is not None:
            return min(float(hinted), self.max_wait)
        return min(0.5 * 2 ** (state.attempt_number - 1), 30.0)
