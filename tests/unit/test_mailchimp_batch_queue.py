"""The /batches coalescer: operations handed in while a job runs go as one job when it ends, and
each caller gets exactly its own result items (or its job's error), by its own ids."""

from __future__ import annotations

import copy
import json
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kommo_sync.batching import JobTimer
from kommo_sync.clock import FakeClock
from kommo_sync.destinations.mailchimp.api import AudienceApi
from kommo_sync.destinations.mailchimp.batch_queue import LEAD, BatchQueue
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.errors import Interrupted, RequestRefused, RetryLater
from kommo_sync.http import HttpClient

GUARD = 5.0  # seconds before a test that waits for its threads gives up (never a timing assert)

Operations = list[dict[str, Any]]


def tag_operations(caller: str, count: int) -> Operations:
    """Tag moves of one engine batch: their ids (`tag:7:0`, ...) are the same for every caller."""
    return [
        {
            "method": "POST",
            "path": "/lists/L/segments/7",
            "operation_id": f"tag:7:{start}",
            "body": json.dumps({"caller": caller, "start": start}),
        }
        for start in range(count)
    ]


def item(operation_id: str, body: str) -> dict[str, Any]:
    return {"operation_id": operation_id, "status_code": 200, "response": body}


def own_items(operations: Operations) -> dict[str, dict[str, Any]]:
    """What a caller must get back: the item of each of its operations, by its own id."""
    return {op["operation_id"]: item(op["operation_id"], op["body"]) for op in operations}


def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, "the threads never got there"
        time.sleep(0.005)


class Jobs:
    """A fake `run`: records each job's operations; the first job runs until `end_first` is set;
    `failures[n]` (n counting jobs from 0) is raised by job n. Each item echoes its operation's
    body, so a caller handed another's item would see it."""

    def __init__(self, failures: dict[int, Exception] | None = None, blocked: int = 1):
        self.calls: list[Operations] = []
        self.blocked = blocked  # how many of the first jobs run until `end_first`
        self.end_first = threading.Event()
        self.failures = failures or {}
        self._lock = threading.Lock()

    def __call__(self, operations: Operations) -> dict[str, dict[str, Any]]:
        with self._lock:
            self.calls.append(copy.deepcopy(operations))
            number = len(self.calls) - 1
        if number < self.blocked:
            assert self.end_first.wait(GUARD)
        if number in self.failures:
            raise self.failures[number]
        return {op["operation_id"]: item(op["operation_id"], op["body"]) for op in operations}


class Waiters:
    """A fake `check`: notes which threads waited for a job; raises Interrupted on the threads
    named in `stopped`."""

    def __init__(self, stopped: tuple[str, ...] = ()):
        self.seen: set[str] = set()
        self.stopped = stopped
        self._lock = threading.Lock()

    def __call__(self) -> None:
        name = threading.current_thread().name
        with self._lock:
            self.seen.add(name)
        if name in self.stopped:
            raise Interrupted(signal.SIGTERM)


class Caller(threading.Thread):
    """A thread handing its operations to the queue; keeps what it got back or what it raised."""

    def __init__(self, queue: BatchQueue, name: str, operations: Operations):
        super().__init__(name=name, daemon=True)
        self.queue, self.operations = queue, operations
        self.handed_in = copy.deepcopy(operations)
        self.result: dict[str, dict[str, Any]] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.queue.run(self.operations)
        except BaseException as exc:
            self.error = exc

    def finish(self) -> Caller:
        self.join(GUARD)
        assert not self.is_alive()
        return self


def behind_a_running_job(
    queue: BatchQueue,
    jobs: Jobs,
    waiters: Waiters,
    first: Operations,
    later: dict[str, Operations],
) -> tuple[Caller, list[Caller]]:
    """Caller `one` starts a job; while it runs, the `later` callers hand in theirs, one after
    another (each waiting before the next starts), then the first job ends."""
    one = Caller(queue, "one", first)
    one.start()
    eventually(lambda: len(jobs.calls) == 1)
    callers = []
    for name, operations in later.items():
        caller = Caller(queue, name, operations)
        caller.start()
        eventually(lambda name=name: name in waiters.seen)
        callers.append(caller)
    jobs.end_first.set()
    return one.finish(), [caller.finish() for caller in callers]


def setup(
    failures: dict[int, Exception] | None = None, most: int = 20_000, stopped: tuple[str, ...] = ()
) -> tuple[BatchQueue, Jobs, Waiters]:
    jobs, waiters = Jobs(failures), Waiters(stopped)
    return BatchQueue(jobs, waiters, most=most, jobs_out=1), jobs, waiters


def three_later() -> dict[str, Operations]:
    return {
        name: tag_operations(name, count) for name, count in [("two", 3), ("three", 2), ("four", 4)]
    }


# merging -----------------------------------------------------------------------------------------
def test_one_batch_alone_waits_for_the_running_job_but_two_go_out_beside_it():
    jobs, waiters = Jobs(blocked=2), Waiters()
    queue = BatchQueue(jobs, waiters, jobs_out=2)  # no estimate of when jobs end
    one = Caller(queue, "one", tag_operations("one", 2))
    one.start()
    eventually(lambda: len(jobs.calls) == 1)
    two = Caller(queue, "two", tag_operations("two", 3))
    two.start()
    eventually(lambda: "two" in waiters.seen)
    assert len(jobs.calls) == 1  # one batch alone: it waits for the running job to end
    three = Caller(queue, "three", tag_operations("three", 3))
    three.start()
    eventually(lambda: len(jobs.calls) == 2)  # two waiting: they go, beside the running one
    assert len(jobs.calls[1]) == 6
    four = Caller(queue, "four", tag_operations("four", 1))
    four.start()
    eventually(lambda: "four" in waiters.seen)
    assert len(jobs.calls) == 2  # two out: the rest waits
    jobs.end_first.set()
    finished = [caller.finish() for caller in (one, two, three, four)]
    assert len(jobs.calls) == 3
    assert all(caller.result == own_items(caller.handed_in) for caller in finished)


def test_the_next_job_goes_shortly_before_the_running_one_is_due_holding_all_that_came_meanwhile():
    clock = FakeClock()
    jobs, waiters = Jobs(blocked=2), Waiters()
    queue = BatchQueue(jobs, waiters, jobs_out=2, clock=clock, duration=lambda n: 10.0)
    one = Caller(queue, "one", tag_operations("one", 2))
    one.start()
    eventually(lambda: len(jobs.calls) == 1)
    later = [Caller(queue, name, tag_operations(name, 2)) for name in ("two", "three")]
    for caller in later:
        caller.start()
        eventually(lambda name=caller.name: name in waiters.seen)
    assert len(jobs.calls) == 1  # the running job is due in 10 s: the rest waits
    clock.advance(10.0 - LEAD)
    eventually(lambda: len(jobs.calls) == 2)
    assert len(jobs.calls[1]) == 4  # two and three as one job, out before the first ended
    jobs.end_first.set()
    finished = [caller.finish() for caller in [one, *later]]
    assert all(caller.result == own_items(caller.handed_in) for caller in finished)


def test_what_is_handed_in_during_a_job_goes_as_one_job_when_it_ends():
    queue, jobs, waiters = setup()
    one, later = behind_a_running_job(queue, jobs, waiters, tag_operations("one", 2), three_later())
    assert len(jobs.calls) == 2
    assert jobs.calls[0] == one.handed_in  # a job of one caller goes as it was handed in
    merged = jobs.calls[1]
    assert len(merged) == 9
    assert len({op["operation_id"] for op in merged}) == 9
    for caller in later:
        sent = [op for op in merged if json.loads(op["body"])["caller"] == caller.name]
        originals = [op["operation_id"] for op in caller.handed_in]
        prefixes = {
            op["operation_id"].removesuffix(original)
            for op, original in zip(sent, originals, strict=True)
        }
        assert len(prefixes) == 1 and "" not in prefixes
        assert [
            {**op, "operation_id": original} for op, original in zip(sent, originals, strict=True)
        ] == (caller.handed_in)


def test_each_caller_gets_exactly_its_own_items_by_its_own_ids():
    queue, jobs, waiters = setup()
    one, later = behind_a_running_job(queue, jobs, waiters, tag_operations("one", 2), three_later())
    for caller in [one, *later]:
        assert caller.error is None
        assert caller.result == own_items(caller.handed_in)


def test_the_callers_operations_are_left_as_they_were_handed_in():
    queue, jobs, waiters = setup()
    one, later = behind_a_running_job(queue, jobs, waiters, tag_operations("one", 2), three_later())
    for caller in [one, *later]:
        assert caller.operations == caller.handed_in


def test_a_job_alone_without_anyone_waiting_is_one_job():
    queue, jobs, _ = setup()
    jobs.end_first.set()
    operations = tag_operations("alone", 3)
    assert queue.run(operations) == own_items(operations)
    assert jobs.calls == [operations]


# errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "failure",
    [RetryLater("Mailchimp is down"), RequestRefused("Bad Request", 400)],
    ids=["retry-later", "refused"],
)
def test_a_failed_job_fails_every_caller_in_it_and_only_them(failure):
    queue, jobs, waiters = setup(failures={1: failure})
    one, later = behind_a_running_job(queue, jobs, waiters, tag_operations("one", 2), three_later())
    assert one.error is None and one.result == own_items(one.handed_in)
    assert [caller.error for caller in later] == [failure] * 3
    assert len(jobs.calls) == 2  # only a 413 sends a merged job's tickets again


def test_a_failed_first_job_fails_its_caller_and_not_those_merged_after_it():
    queue, jobs, waiters = setup(failures={0: RetryLater("Mailchimp is down")})
    one, later = behind_a_running_job(queue, jobs, waiters, tag_operations("one", 2), three_later())
    assert isinstance(one.error, RetryLater)
    for caller in later:
        assert caller.error is None and caller.result == own_items(caller.handed_in)


def test_a_merged_job_too_large_sends_each_callers_operations_alone():
    too_large = RequestRefused("Request Entity Too Large", 413)
    alone_too_large = RequestRefused("Request Entity Too Large", 413)
    queue, jobs, waiters = setup(failures={1: too_large, 3: alone_too_large})
    one, later = behind_a_running_job(queue, jobs, waiters, tag_operations("one", 2), three_later())
    two, three, four = later
    assert len(jobs.calls) == 5
    assert len(jobs.calls[1]) == 9
    assert jobs.calls[2:] == [two.handed_in, three.handed_in, four.handed_in]
    assert two.result == own_items(two.handed_in)
    assert three.error is alone_too_large  # this caller halves what it sent, on its own
    assert four.result == own_items(four.handed_in)


# the cap -----------------------------------------------------------------------------------------
def test_merged_jobs_stay_within_the_cap():
    queue, jobs, waiters = setup(most=5)
    later = {"two": tag_operations("two", 3), "three": tag_operations("three", 3)}
    one, (two, three) = behind_a_running_job(queue, jobs, waiters, tag_operations("one", 1), later)
    assert jobs.calls == [one.handed_in, two.handed_in, three.handed_in]
    assert two.result == own_items(two.handed_in)
    assert three.result == own_items(three.handed_in)


def test_a_caller_over_the_cap_goes_alone_as_one_job():
    queue, jobs, waiters = setup(most=5)
    later = {"two": tag_operations("two", 7), "three": tag_operations("three", 1)}
    one, (two, three) = behind_a_running_job(queue, jobs, waiters, tag_operations("one", 1), later)
    assert jobs.calls == [one.handed_in, two.handed_in, three.handed_in]
    assert two.result == own_items(two.handed_in)


def test_callers_within_the_cap_together_go_as_one_job():
    queue, jobs, waiters = setup(most=5)
    later = {"two": tag_operations("two", 2), "three": tag_operations("three", 3)}
    behind_a_running_job(queue, jobs, waiters, tag_operations("one", 1), later)
    assert [len(call) for call in jobs.calls] == [1, 5]


# a stop ------------------------------------------------------------------------------------------
def test_a_waiting_caller_stopped_leaves_and_its_operations_are_never_sent():
    queue, jobs, waiters = setup(stopped=("stopped",))
    one = Caller(queue, "one", tag_operations("one", 2))
    one.start()
    eventually(lambda: len(jobs.calls) == 1)
    stopped = Caller(queue, "stopped", tag_operations("stopped", 3))
    stopped.start()
    stopped.finish()
    after = Caller(queue, "after", tag_operations("after", 2))
    after.start()
    eventually(lambda: "after" in waiters.seen)
    jobs.end_first.set()
    one.finish()
    after.finish()
    assert isinstance(stopped.error, Interrupted)
    assert jobs.calls == [one.handed_in, after.handed_in]
    assert after.result == own_items(after.handed_in)


# what the job timer learns ---------------------------------------------------------------------
def test_a_job_queued_behind_ours_is_timed_from_the_end_of_ours_not_from_its_submission():
    clock = FakeClock()
    http = HttpClient(base_url="http://127.0.0.1:9", vendor="Mailchimp", clock=clock)
    timer = JobTimer()
    api = AudienceApi(
        MailchimpConfig("key-us1", "L", "http://127.0.0.1:9"), http, http, clock, timer
    )
    first = {
        "submitted_at": "2026-01-01T00:00:00+00:00",
        "completed_at": "2026-01-01T00:00:10+00:00",
    }
    queued = {
        "submitted_at": "2026-01-01T00:00:07+00:00",
        "completed_at": "2026-01-01T00:00:18+00:00",
    }
    alone = {
        "submitted_at": "2026-01-01T00:01:00+00:00",
        "completed_at": "2026-01-01T00:01:09+00:00",
    }
    assert [api._ran_for(batch) for batch in (first, queued, alone)] == [10, 8, 9]
