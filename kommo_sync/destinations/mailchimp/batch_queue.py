"""Mailchimp runs an account's /batches jobs one at a time, and each job has a fixed cost of
seconds: jobs that several threads hand in at once would queue one behind the other at Mailchimp,
each paying it. So the operations threads hand in while a job of ours runs wait here and go
together as one job (fewer fixed costs); each caller gets back the result items of its own
operations, by its own operation ids. The next job is sent shortly before the running one is
due to end (by the job timer's estimate), so it waits in Mailchimp's queue instead of Mailchimp
idling while we poll, and it holds everything handed in until then.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kommo_sync.clock import Clock
from kommo_sync.errors import RequestRefused

# Mailchimp documents no cap on operations per job; this bounds a job's duration and body size.
MAX_MERGED_OPERATIONS = 20_000
TOO_LARGE = 413
WAIT = 0.1  # a waiting caller notices a stop within this many seconds
JOBS_OUT = 2  # jobs of ours at Mailchimp at once: the one it runs and the next in its queue
LEAD = 3.0  # seconds before the running job is due to end that the next one is sent

Operations = list[dict[str, Any]]
Items = dict[str, dict[str, Any]]
Outcome = tuple["_Ticket", Items | BaseException]


@dataclass(eq=False)
class _Ticket:
    """One caller's operations and, once their job ended, its result items or its error.
    `prefix` names the caller's operations in a merged job: ids collide across callers (a tag
    operation's id counts from the start of its own engine batch)."""

    prefix: str
    operations: Operations
    items: Items | None = None
    error: BaseException | None = None
    done: bool = False


class BatchQueue:
    """/batches jobs of one destination, at most `jobs_out` at once, a further one only near
    the end of those out (by `duration`, a job's estimated seconds): a caller that finds room
    leads (sends what waits as one job), the others wait. `run(operations)` is one job, waited
    for, giving each operation's result item by id; `check()` raises Interrupted once a stop was
    asked for; `most` caps the operations of a merged job (one caller's own operations go alone
    whatever their number)."""

    def __init__(
        self,
        run: Callable[[Operations], Items],
        check: Callable[[], None],
        most: int = MAX_MERGED_OPERATIONS,
        jobs_out: int = JOBS_OUT,
        clock: Clock | None = None,
        duration: Callable[[int], float | None] = lambda operations: None,
    ):
        self._run, self._check, self._most, self._jobs_out = run, check, most, jobs_out
        self._clock, self._duration = clock or Clock(), duration
        self._condition = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._due: list[float | None] = []  # when each job out is due to end, if known
        self._numbers = itertools.count(1)

    def run(self, operations: Operations) -> Items:
        """The result item of each of `operations`, by its id, from the job they went in; that
        job's error when it failed whole."""
        with self._condition:
            ticket = _Ticket(f"{next(self._numbers)}:", operations)
            self._waiting.append(ticket)
            try:
                while not ticket.done:
                    if ticket in self._waiting and self._room():
                        self._lead()
                    else:
                        self._wait_for_job()
            finally:
                if ticket in self._waiting:  # a caller stopped while waiting: nobody sends it
                    self._waiting.remove(ticket)
        if ticket.error is not None:
            raise ticket.error
        assert ticket.items is not None
        return ticket.items

    def _room(self) -> bool:
        """Whether a job may be sent now: none is out, or fewer than `jobs_out` are, every one
        out is due to end within LEAD seconds (or its end cannot be told), and at least two
        callers wait: one caller's batch alone waits for the running job to end, so the next
        job holds more (each job's fixed cost counts more than a short idle at Mailchimp)."""
        if not self._due:
            return True
        if len(self._due) >= self._jobs_out or len(self._waiting) < 2:
            return False
        now = self._clock.monotonic()
        return all(due is None or due - LEAD <= now for due in self._due)

    def _wait_for_job(self) -> None:
        """Another caller's job runs: wait for it to end, stopping if a stop was asked for."""
        self._check()
        self._condition.wait(timeout=WAIT)

    def _lead(self) -> None:
        """Send what waits (up to the cap) as one job, letting go of the lock while it runs, then
        hand each of its callers their part."""
        tickets = self._take()
        estimate = self._duration(sum(len(ticket.operations) for ticket in tickets))
        due = None if estimate is None else self._clock.monotonic() + estimate
        self._due.append(due)
        self._condition.release()
        try:
            outcomes = self._outcomes(tickets)
        except BaseException as exc:  # every caller of the job hears of it, whatever it is
            outcomes = [(ticket, exc) for ticket in tickets]
        finally:
            self._condition.acquire()
        for ticket, outcome in outcomes:
            _settle(ticket, outcome)
        self._due.remove(due)
        self._condition.notify_all()

    def _take(self) -> list[_Ticket]:
        """The waiting tickets, in order, while their operations stay within the cap (always the
        first, however many it holds)."""
        taken: list[_Ticket] = []
        count = 0
        while self._waiting:
            size = len(self._waiting[0].operations)
            if taken and count + size > self._most:
                break
            taken.append(self._waiting.pop(0))
            count += size
        return taken

    def _outcomes(self, tickets: list[_Ticket]) -> list[Outcome]:
        """One job for all the tickets; a merged job refused as too large (413) → each ticket's
        operations as a job of their own, so each caller halves only what it sent."""
        if len(tickets) == 1:
            return [self._alone(tickets[0])]
        try:
            items = self._run(_merged(tickets))
        except RequestRefused as exc:
            if exc.status != TOO_LARGE:
                raise
            return [self._alone(ticket) for ticket in tickets]
        return _split(tickets, items)

    def _alone(self, ticket: _Ticket) -> Outcome:
        """A ticket's operations as they are, as a job of their own: no ids to tell apart."""
        try:
            return ticket, self._run(ticket.operations)
        except Exception as exc:
            return ticket, exc


def _merged(tickets: list[_Ticket]) -> Operations:
    """Copies of every ticket's operations, each id behind its ticket's prefix (the callers'
    dicts stay as they are)."""
    return [
        {**operation, "operation_id": f"{ticket.prefix}{operation['operation_id']}"}
        for ticket in tickets
        for operation in ticket.operations
    ]


def _split(tickets: list[_Ticket], items: Items) -> list[Outcome]:
    """A merged job's result items back to their tickets, by prefix, under the original ids."""
    parts: dict[str, Items] = {ticket.prefix: {} for ticket in tickets}
    for operation_id, item in items.items():
        number, colon, original = operation_id.partition(":")
        part = parts.get(number + colon)
        if part is not None:
            part[original] = {**item, "operation_id": original}
    return [(ticket, parts[ticket.prefix]) for ticket in tickets]


def _settle(ticket: _Ticket, outcome: Items | BaseException) -> None:
    if isinstance(outcome, BaseException):
        ticket.error = outcome
    else:
        ticket.items = outcome
    ticket.done = True
