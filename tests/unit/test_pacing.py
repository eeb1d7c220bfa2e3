"""Kommo's pace: start-spaced slots, a 429 holding every thread, pages kept in flight.

Slot bookings and holds are checked on simulated time. What simulated time cannot show (a
FakeClock jumps to the latest sleep, so the waits of several threads never overlap) is checked
on the real clock at a fast pace: that starts stay spaced while several answers are awaited.
"""

import threading
import time

import pytest

from kommo_sync.clock import Clock, FakeClock
from kommo_sync.errors import VendorDown
from kommo_sync.http import HttpClient
from kommo_sync.kommo import KommoClient, kommo_retry_after
from kommo_sync.pacing import MAX_IN_FLIGHT, LocalSchedule, Pacer
from kommo_sync.pipeline import Prefetch
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.network import KOMMO_PAGE, Latency, route
from kommo_sync.sandbox.seed import seed_account
from kommo_sync.sandbox.server import App, Response, SandboxServer


def test_starts_are_spaced_by_the_interval_with_a_burst_of_one():
    clock = FakeClock()
    schedule = LocalSchedule(clock)
    first = schedule.take(0.5)
    booked = [schedule.take(0.5) for _ in range(3)]
    assert first == clock.monotonic()  # idle: the first start is now
    assert booked == [first + 0.5, first + 1.0, first + 1.5]
    clock.advance(10)
    assert schedule.take(0.5) == clock.monotonic()  # idle time is not saved up as a burst


def test_a_hold_pushes_every_later_start_past_it_and_never_pulls_one_earlier():
    clock = FakeClock()
    schedule = LocalSchedule(clock)
    schedule.take(0.5)
    schedule.hold(2.0)
    assert schedule.take(0.5) == clock.monotonic() + 2.0
    schedule.hold(0.1)  # shorter than what is booked: nothing moves
    assert schedule.next_start == clock.monotonic() + 2.5


def test_a_start_that_comes_late_pushes_the_next_one_a_whole_interval_after_it():
    clock = FakeClock()
    schedule = LocalSchedule(clock)
    late, next_slot = schedule.take(0.5), schedule.take(0.5)
    clock.advance(0.4)  # the first thread woke 0.4 s after its slot
    assert schedule.claim(0.5) is None  # it starts now
    clock.advance(next_slot - clock.monotonic())  # the second wakes on time ...
    assert schedule.claim(0.5) == pytest.approx(late + 0.9)  # ... and waits: never two at once
    clock.advance(0.4)
    assert schedule.claim(0.5) is None


def test_a_booked_slot_is_not_claimed_while_a_hold_lasts():
    clock = FakeClock()
    schedule = LocalSchedule(clock)
    slot = schedule.take(0.5)
    schedule.hold(3.0)
    assert schedule.claim(0.5) == pytest.approx(slot + 3.0)


def test_the_pacer_sleeps_until_its_slot():
    clock = FakeClock()
    pacer = Pacer(4.0, clock)
    start = clock.monotonic()
    for _ in range(5):
        pacer.wait_turn()
    assert clock.monotonic() - start == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("answer_time", "depth"),
    [(0.0, 1), (0.05, 1), (0.1, 1), (0.22, 2), (0.5, 4), (1.0, 8), (5.0, MAX_IN_FLIGHT)],
)
def test_requests_in_flight_follow_the_answer_time(answer_time, depth):
    pacer = Pacer(6.3, Clock())
    pacer.answered(answer_time)
    assert pacer.depth() == depth


def test_on_simulated_time_or_without_a_pace_requests_go_one_at_a_time():
    simulated = Pacer(6.3, FakeClock())
    simulated.answered(1.0)
    unpaced = Pacer(None, Clock())
    unpaced.answered(1.0)
    assert (simulated.depth(), unpaced.depth()) == (1, 1)


def test_the_answer_time_estimate_moves_toward_new_answers_without_jumping():
    pacer = Pacer(6.3, Clock())
    pacer.answered(0.2)
    pacer.answered(1.2)
    assert pacer.answer_time == pytest.approx(0.4)


class Listing:
    """A numbered list of `pages` full pages then a short one, recording what was fetched."""

    def __init__(self, pages: int, fail_on: int | None = None):
        self.pages, self.fail_on = pages, fail_on
        self.fetched: list[int] = []
        self.lock = threading.Lock()

    def fetch(self, page: int) -> list[int]:
        with self.lock:
            self.fetched.append(page)
        if page == self.fail_on:
            raise VendorDown(f"page {page} failed")
        if page <= self.pages:
            return [page] * 10
        return [page] if page == self.pages + 1 else []


def read(listing: Listing, depth: int) -> list[int]:
    pages = []
    with Prefetch(listing.fetch, lambda: depth) as ahead:
        page = 1
        while len(ahead.get(page)) == 10:
            pages.append(page)
            page += 1
        pages.append(page)
    return pages


def test_one_page_costs_one_request_whatever_the_depth():
    listing = Listing(pages=0)
    assert read(listing, depth=4) == [1]
    assert listing.fetched == [1]


def test_pages_come_back_in_order_and_a_read_ends_at_most_depth_minus_one_past_its_end():
    listing = Listing(pages=9)
    assert read(listing, depth=4) == list(range(1, 11))
    assert sorted(listing.fetched)[:10] == list(range(1, 11))
    assert len(listing.fetched) - 10 <= 3
    assert listing.fetched[0] == 1 and listing.fetched.count(1) == 1


def test_a_page_asked_for_again_is_fetched_again_not_answered_from_memory():
    listing = Listing(pages=3)
    with Prefetch(listing.fetch, lambda: 3) as ahead:
        for page in (1, 2, 3, 4, 4):
            ahead.get(page)
        in_flight = sorted(ahead.futures)
    assert listing.fetched.count(4) == 2
    assert in_flight == [5, 6]  # asking page 4 again sent no page further ahead


def test_an_error_reaches_the_reader_on_its_page_and_one_past_the_end_is_dropped():
    failing = Listing(pages=5, fail_on=3)
    with pytest.raises(VendorDown, match="page 3"):
        read(failing, depth=3)
    past_end = Listing(pages=2, fail_on=5)
    assert read(past_end, depth=4) == [1, 2, 3]


class SlowThing(App):
    """Answers after a real `answer_time`, recording each arrival and the most in flight."""

    def __init__(self, answer_time: float, script: list[Response] | None = None):
        super().__init__(Clock())
        self.answer_time, self.script = answer_time, list(script or [])
        self.arrivals: list[float] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        self.route("GET", "/thing", self.answer)

    def answer(self, request):
        with self.lock:
            self.arrivals.append(time.monotonic())
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            scripted = self.script.pop(0) if self.script else None
        time.sleep(self.answer_time)
        with self.lock:
            self.in_flight -= 1
        return scripted or Response(200, {"ok": True})


def paced_client(url: str, rate: float) -> HttpClient:
    return HttpClient(
        base_url=url,
        vendor="Kommo",
        clock=Clock(),
        rate_per_second=rate,
        max_connections=MAX_IN_FLIGHT,
        retry_after_from_body=kommo_retry_after,
    )


def test_starts_stay_spaced_while_several_slow_answers_are_awaited():
    app = SlowThing(answer_time=0.12)
    with SandboxServer(app).start() as server:
        http = paced_client(server.url, rate=40.0)
        http.pacer.answered(0.12)
        listing = Prefetch(lambda page: http.request("GET", "/thing"), http.pacer.depth)
        with listing:
            for page in range(1, 25):
                listing.get(page)
    assert app.most_in_flight >= 3  # one at a time could not have overlapped
    # and never faster than the pace, counted as a vendor counts: arrivals in any window (one
    # late thread may land next to the following start on a loaded machine; a window of 0.2 s
    # holds at most 8 starts and the one at its edge)
    assert most_in_window(app.arrivals, 0.2) <= 0.2 * 40 + 1
    assert app.arrivals[-1] - app.arrivals[0] >= 23 / 40.0 - 0.005  # 24 starts span 23 slots


def most_in_window(moments: list[float], width: float) -> int:
    """The most moments in any window of `width` seconds."""
    return max(
        sum(1 for later in moments[i:] if later - start < width) for i, start in enumerate(moments)
    )


def test_a_429_holds_the_schedule_for_every_thread_for_the_named_wait():
    clock = FakeClock()
    app = SlowThing(0.0, [Response(429, {"retry_after": 3})])
    app.clock = clock
    with SandboxServer(app).start() as server:
        http = HttpClient(
            base_url=server.url,
            vendor="Kommo",
            clock=clock,
            rate_per_second=6.3,
            max_attempts=1,
            retry_after_from_body=kommo_retry_after,
        )
        before = clock.monotonic()
        with pytest.raises(VendorDown):
            http.request("GET", "/thing")
        other = threading.Thread(target=http.request, args=("GET", "/thing"))
        other.start()
        other.join()
    assert http.pacer.schedule.take(0.0) >= before + 3.0  # type: ignore[attr-defined]
    assert clock.slept[-1] >= 3.0 - 1e-9  # the next request, on another thread, waited it out


def test_a_kommo_read_with_slow_pages_keeps_pages_in_flight_and_reads_each_contact_once():
    sandbox = KommoSandbox(Clock(), rate_limit=40)
    sandbox.latency = Latency((route("GET", "/api/v4/contacts", KOMMO_PAGE.scaled(0.5)),))
    seed_account(sandbox, 2_000, seed=3)
    with SandboxServer(sandbox).start() as server:
        http = paced_client(server.url, rate=30.0)
        http.session.headers["Authorization"] = f"Bearer {sandbox.token}"
        ids = [c["id"] for page in KommoClient(http).changed("contacts", 0, 2**31) for c in page]
    pages = sandbox.requests("GET", "/api/v4/contacts")
    assert ids == sorted(set(ids)) and len(ids) == 2_000
    assert http.pacer.depth() >= 2
    assert all(r.status in (200, 204) for r in pages)  # no 429
    assert len(pages) - (2_000 // 250 + 2) < MAX_IN_FLIGHT  # 8 full, the empty one twice
