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


def test_one_size_seen_is_taken_as_half_fixed_half_per_item_and_nonsense_is_ignored():
    timer = JobTimer()
    timer.finished(2500, 4.0)
    timer.finished(2500, -30.0)  # a clock skew, not a duration
    assert timer.estimate(2500) == pytest.approx(4.0)
    assert timer.estimate(10) == pytest.approx(2.0 + 2.0 * 10 / 2500)
    assert timer.estimate(5000) == pytest.approx(6.0)
    assert next(timer.delays(10)) == pytest.approx(2.0 + 0.008 + 1.0)  # and the margin


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


class Memory(dict):  # type: ignore[type-arg]
    def set(self, key, value):
        self[key] = value


def test_what_a_timer_learned_is_kept_and_a_new_timer_aims_its_first_poll_with_it():
    learned = JobTimer()
    learned.finished(1000, 10.0)
    learned.finished(3000, 14.0)
    memory = Memory()
    learned.keep_in(memory)
    fresh = JobTimer()
    assert next(fresh.delays(2000)) == 5.0  # knows nothing: Mailchimp's advice
    fresh.restore(memory["job_times"])
    assert fresh.estimate(2000) == pytest.approx(12.0)
    assert next(fresh.delays(2000)) == pytest.approx(13.0)  # the estimate and the margin


def test_a_timer_restores_only_well_formed_samples_and_keeps_the_newest():
    timer = JobTimer()
    timer.restore([[10, 1.0], ["x", 2], [5], None, [True, 1.0], *([[100, 3.0]] * 30)])
    assert len(timer.remembered()) == JobTimer.SAMPLES
    assert timer.remembered()[-1] == [100, 3.0]
    timer.restore("nonsense")
    assert len(timer.remembered()) == JobTimer.SAMPLES


def test_keeping_unchanged_samples_writes_nothing():
    timer, memory = JobTimer(), Memory()
    timer.keep_in(memory)
    assert memory == {}  # nothing learned yet
    timer.finished(10, 2.0)
    timer.keep_in(memory)
    writes = dict(memory)
    memory.clear()
    memory.update(writes)
    calls = []
    memory.set = lambda key, value: calls.append(key)  # type: ignore[method-assign]
    timer.keep_in(memory)
    assert calls == []
