"""The push pipeline: results recorded in order on the calling thread, bounded depth, errors
surface."""

import threading

import pytest

from kommo_sync.errors import FatalError
from kommo_sync.pipeline import PushPipeline, read_ahead


def test_results_are_recorded_in_submission_order_on_the_main_thread():
    pipeline = PushPipeline(overlap=True, depth=2)
    gate = threading.Event()
    recorded, threads = [], []

    def slow():
        gate.wait(5)
        return "first"

    pipeline.submit(
        slow, lambda r: (recorded.append(r), threads.append(threading.current_thread()))
    )
    assert recorded == []  # the first push is still running: the caller goes on
    gate.set()
    pipeline.submit(
        lambda: "second", lambda r: (recorded.append(r), threads.append(threading.current_thread()))
    )
    pipeline.close()
    assert recorded == ["first", "second"]
    assert set(threads) == {threading.current_thread()}


def test_no_more_than_depth_batches_are_in_flight():
    pipeline = PushPipeline(overlap=True, depth=2)
    for i in range(5):
        pipeline.submit(lambda i=i: i, lambda r: None)
        assert len(pipeline.in_flight) <= 1
    pipeline.close()


def test_what_is_in_flight_is_bounded_by_its_size_but_one_batch_always_goes():
    first, middle, last = threading.Event(), threading.Event(), threading.Event()
    for delay, event in ((0.1, first), (0.2, middle), (0.3, last)):
        threading.Timer(delay, event.set).start()
    pipeline = PushPipeline(overlap=True, depth=10, workers=4, budget=10)
    recorded: list[int] = []
    held: list[int] = []
    for size, done in ((4, first), (4, middle), (4, middle), (30, last)):
        pipeline.submit(lambda s=size, d=done: d.wait() and s, recorded.append, size=size)
        held.append(sum(entry[2] for entry in pipeline.in_flight))
    pipeline.close()
    assert held == [4, 8, 8, 30]  # 12 > 10: the first was waited for; 30 alone still goes
    assert recorded == [4, 4, 4, 30]


def test_an_error_in_a_push_reaches_the_main_thread():
    pipeline = PushPipeline(overlap=True)

    def fail():
        raise RuntimeError("vendor down")

    with pytest.raises(RuntimeError, match="vendor down"):  # at the next submit or at close
        pipeline.submit(fail, lambda r: None)
        pipeline.close()
    pipeline.abandon()


def test_without_overlap_work_runs_inline():
    pipeline = PushPipeline(overlap=False)
    seen = []
    pipeline.submit(lambda: threading.current_thread(), seen.append)
    assert seen == [threading.current_thread()]


# read_ahead ---------------------------------------------------------------------------------------
def test_read_ahead_yields_every_page_in_order():
    assert list(read_ahead(iter(range(100)), depth=3)) == list(range(100))


def test_read_ahead_raises_a_reader_error_after_the_pages_before_it():
    def pages():
        yield 1
        yield 2
        raise FatalError("token expired")

    seen = []
    with pytest.raises(FatalError, match="token expired"):
        for page in read_ahead(pages(), depth=5):
            seen.append(page)
    assert seen == [1, 2]


def test_leaving_the_loop_stops_the_reader_within_its_depth():
    produced = []

    def pages():
        for n in range(1000):
            produced.append(n)
            yield n

    for page in read_ahead(pages(), depth=4):
        if page == 9:
            break
    assert 10 <= len(produced) <= 10 + 4 + 1  # never the whole source
