"""Batch cuts and the bulk-job poll timer (pure, no HTTP)."""

from itertools import islice

import pytest

from kommo_sync.batching import JobTimer, chunks
from kommo_sync.errors import RetryLater


def test_chunks_cut_in_order_and_keep_the_rest():
    assert list(chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []


def test_before_any_job_finished_polls_start_at_5_s_and_back_off_to_a_minute():
    delays = list(islice(JobTimer().delays(1000), 12))
    assert delays[:4] == [5.0, 7.5, 11.25, 16.875]
    assert max(delays) == 60.0 and delays[-1] == 60.0


def test_the_first_poll_lands_when_jobs_of_that_size_took_to_finish():
    timer = JobTimer()
    timer.finished(100, 3.0)  # 2 s fixed + 10 ms an item, by the vendor's clock
    timer.finished(1000, 12.0)
    assert timer.estimate(500) == pytest.approx(7.0)
    first, second, third = islice(timer.delays(500), 3)
    assert first == pytest.approx(8.0)  # the estimate and a second for whole-second times
    assert (second, third) == (
        pytest.approx(3.0),
        pytest.approx(4.5),
    )  # a quick recheck, then backing off


def test_one_size_seen_predicts_that_duration_and_nonsense_is_ignored():
    timer = JobTimer()
    timer.finished(2500, 4.0)
    timer.finished(2500, -30.0)  # a clock skew, not a duration
    assert timer.estimate(10) == pytest.approx(4.0)
    assert next(timer.delays(10)) == pytest.approx(5.0)


def test_wait_polls_until_the_job_is_done_sleeping_as_the_delays_say():
    slept, polls = [], iter(["queued", "processing", "complete"])
    job = JobTimer().wait(
        "submitted",
        100,
        lambda status: status == "complete",
        lambda _: next(polls),
        slept.append,
        "batch 7",
    )
    assert job == "complete" and slept == [5.0, 7.5, 11.25]


def test_a_job_not_done_at_the_limit_is_given_up_as_transient_with_the_last_poll_at_the_limit():
    slept: list[float] = []
    polled: list[str] = []

    def poll(status: str) -> str:
        polled.append(status)
        return status

    with pytest.raises(RetryLater) as raised:
        JobTimer(limit=120).wait(
            "queued", 100, lambda status: False, poll, slept.append, "Mailchimp batch 7"
        )
    assert str(raised.value) == (
        "Mailchimp batch 7 did not finish within 2 minutes; "
        "its records are held back for the next run"
    )
    assert sum(slept) == pytest.approx(120) and len(polled) == len(slept) == 7
    assert JobTimer().limit == 600
