"""One logical Klaviyo request for many rows, and the verdict on each row.

A request Klaviyo refuses as a whole because of some rows (`source.pointer`) is resent without
them; one refused without naming rows is transient for all it held (decided by
`failures.classify`), and one too large (413) goes again in halves. A request that is not
repeatable (an event bulk job has no status to read back) is never resent once it may have been
applied: its rows are left unsettled, for the caller to settle through a de-duplicating path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import requests

from kommo_sync.destinations.klaviyo.api import Locator, error_text, json_of, text_of
from kommo_sync.destinations.klaviyo.mapping import NAME
from kommo_sync.errors import RequestRefused, RetryLater
from kommo_sync.failures import classify
from kommo_sync.http import HttpClient, describe_error

T = TypeVar("T")
Builder = Callable[[list[T]], tuple[dict[str, Any], Locator]]
"""The body for some of a request's items, and the locator of its error pointers."""


@dataclass(frozen=True)
class Failure:
    reason: str
    permanent: bool

    @classmethod
    def judged(cls, status: int, reason: str, attributed: bool, text: str = "") -> Failure:
        """The classification table's verdict on a refusal (`text`: Klaviyo's code, title and
        detail); a record is named (`attributed`) by a row pointer or a single-record request."""
        verdict = classify(NAME, status, text or reason, attributed=attributed)
        return cls(reason if verdict.permanent else f"{reason} ({verdict.why})", verdict.permanent)


def failure_of(exc: RequestRefused | RetryLater, attributed: bool = False) -> Failure:
    if isinstance(exc, RequestRefused):
        status = exc.status or 400  # a RequestRefused always holds its HTTP status
        return Failure.judged(status, exc.reason, attributed, error_text(exc.body))
    return Failure(str(exc), False)


class RowRefused(Exception):
    """A single-profile request refused: Klaviyo named that record."""

    def __init__(self, failure: Failure):
        super().__init__(failure.reason)
        self.failure = failure


@dataclass
class Sent:
    """One logical request after dropping the rows Klaviyo pointed at (and halving it when too
    large), by input position: the requests Klaviyo accepted with their positions, the failures,
    and `unsettled`: positions of a request refused without naming rows, or whose outcome is
    unknown (they hold transient failures)."""

    failures: dict[int, Failure] = field(default_factory=dict)
    accepted: list[tuple[list[int], requests.Response]] = field(default_factory=list)
    unsettled: list[int] = field(default_factory=list)

    @property
    def sent(self) -> list[int]:
        return [position for positions, _ in self.accepted for position in positions]

    def hold(self, positions: list[int], failure: Failure) -> None:
        self.failures.update({position: failure for position in positions})
        self.unsettled += positions

    def take(self, response: requests.Response, pending: list[int], locate: Locator) -> list[int]:
        """Record Klaviyo's answer for `pending`; the positions to send again (refused because
        of other rows). A refusal naming no row is transient for all it held."""
        status = response.status_code
        if status < 300:
            self.accepted.append((pending, response))
            return []
        named = _pointed_rows(response, locate, len(pending))
        if not named:
            text = error_text(json_of(response))
            self.hold(pending, Failure.judged(status, describe_error(response), False, text))
            return []
        for position, (reason, text) in named.items():
            self.failures[pending[position]] = Failure.judged(status, reason, True, text)
        return [i for position, i in enumerate(pending) if position not in named]


def _pointed_rows(
    response: requests.Response, locate: Locator, count: int
) -> dict[int, tuple[str, str]]:
    """Positions the error pointers of a refusal name, with Klaviyo's reason and error text."""
    body = json_of(response)
    errors = (body.get("errors") if isinstance(body, dict) else None) or []
    rows: dict[int, tuple[str, str]] = {}
    for error in (e for e in errors if isinstance(e, dict)):
        pointer = str((error.get("source") or {}).get("pointer") or "")
        for position in locate(pointer):
            if position < count:
                reason = str(error.get("detail") or error.get("title") or "invalid")
                rows.setdefault(position, (reason, text_of(error)))
    return rows


@dataclass(frozen=True)
class Request:
    """Where one logical request goes and how it may be sent."""

    method: str
    path: str
    repeatable: bool = True
    need_body: bool = False


def send(http: HttpClient, request: Request, items: list[T], build: Builder[T]) -> Sent:
    """One request for `items`. When Klaviyo refuses it because of some rows (error
    pointers), those rows fail with its reason and the rest is sent again; when it is too
    large (413), it goes again in halves, down to one row. `need_body`: an answer without the
    body due (a job's id) is a failed attempt."""
    sent = Sent()
    call = functools.partial(
        http.request,
        request.method,
        request.path,
        allow=(400, 409, 413),
        repeatable=request.repeatable,
        need_body=request.need_body,
    )
    _send_part(_Part(call, items, build, sent), list(range(len(items))))
    return sent


@dataclass(frozen=True)
class _Part(Generic[T]):
    call: Callable[..., requests.Response]
    items: list[T]
    build: Builder[T]
    sent: Sent


def _send_part(part: _Part[T], pending: list[int]) -> None:
    while pending:
        body, locate = part.build([part.items[i] for i in pending])
        try:
            response = part.call(json=body)
        except (RequestRefused, RetryLater) as exc:
            part.sent.hold(pending, failure_of(exc))
            return
        if response.status_code == 413 and len(pending) > 1:
            middle = len(pending) // 2
            for half in (pending[:middle], pending[middle:]):
                _send_part(part, half)
            return
        pending = part.sent.take(response, pending, locate)
