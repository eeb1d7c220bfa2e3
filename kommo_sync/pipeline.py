"""Overlap destination pushes with Kommo pulls.

Kommo's 7 requests per second are the floor of every run, so Kommo is kept busy (pages read ahead
on their own thread, company names and events on the main thread) while worker threads push
earlier batches to Mailchimp and Klaviyo (bulk jobs spend most of their time waiting for the
vendor, so several batches are in the vendors' hands at once). Results come back to the main
thread, which alone writes the state file, in the order the batches were submitted. At most
`depth` batches are in flight, so memory stays bounded. While it waits for a worker, the main
thread calls `check` every tenth of a second: a stop asked for ends the wait (a safe point).
"""

from __future__ import annotations

import functools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
_END = object()
CHECK_EVERY = 0.1
MAX_PREFETCH = 8  # threads of one read's pages fetched ahead
IN_FLIGHT_RECORDS = 20_000  # records with the vendors at once (5,000 hold about 30 MB)


class PushPipeline:
    def __init__(
        self,
        overlap: bool,
        depth: int = 2,
        workers: int = 1,
        check: Callable[[], None] = lambda: None,
        budget: int | None = None,
    ):
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="push") if overlap else None
        self.depth, self.check, self.budget = depth, check, budget
        self.in_flight: deque[tuple[Future[Any], Callable[[Any], None], int]] = deque()

    def submit(self, work: Callable[[], Any], then: Callable[[Any], None], size: int = 0) -> None:
        """Run `work` (off the main thread when overlapping); `then(result)` runs on the main
        thread. `size` (the records it holds) counts against `budget`: what is in flight is
        bounded by its size too, so batches waiting at a slow vendor do not pile up in memory."""
        if self.executor is None:
            then(work())
            return
        self.in_flight.append((self.executor.submit(work), then, size))
        self.collect(wait_until=self.depth - 1)

    @property
    def busy(self) -> bool:
        """Whether pushes are still in flight."""
        return bool(self.in_flight)

    def collect(self, wait_until: int = 0) -> None:
        """Record finished batches in order; block while more than `wait_until` are in flight,
        or while more than `budget` records are (the newest batch always may be)."""
        while self.in_flight and (self.in_flight[0][0].done() or self._over(wait_until)):
            future, then, _ = self.in_flight[0]
            while not wait([future], timeout=CHECK_EVERY).done:
                self.check()
            self.in_flight.popleft()
            then(future.result())

    def _over(self, wait_until: int) -> bool:
        if len(self.in_flight) > wait_until:
            return True
        held = sum(size for _, _, size in self.in_flight)
        return self.budget is not None and len(self.in_flight) > 1 and held > self.budget

    def close(self) -> None:
        """Record everything still in flight (the normal end of a run)."""
        self.collect()

    def abandon(self) -> None:
        """Stop without recording: pushes in flight finish at the vendor, and since their outcome
        is not recorded the next run plans them again (member upserts are idempotent; events go
        through the path that de-duplicates on their unique id)."""
        self.in_flight.clear()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


def read_ahead(pages: Iterator[T], depth: int) -> Iterator[T]:
    """`pages` read on a thread of their own, at most `depth` ahead of the caller, so Kommo's
    pacing keeps going while the main thread plans, records or waits for a push worker. An
    error reaches the caller where the page would have been; leaving the loop stops the reader."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not offer(page):
                    return
            offer(_END)
        except BaseException as exc:  # handed to the caller, who decides
            offer(_Raised(exc))

    reader = threading.Thread(target=read, name="kommo-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        reader.join(timeout=1.0)  # one mid-request ends on its own and stops at its next offer


class Prefetch(Generic[T]):
    """Numbered pages fetched ahead: `get(n)` answers `fetch(n)` and keeps pages n+1 … in
    flight, up to `depth()` at once, so a page's answer time overlaps the next pages' slots.
    Page 1 is fetched alone (a list that fits one page costs one request), and a page is
    fetched ahead only once the page before it was asked for, so a read ends at most
    `depth() - 1` requests past its last page. A page asked for twice (an empty page confirmed)
    is fetched again, not answered from memory. Errors of pages never asked for are dropped."""

    def __init__(self, fetch: Callable[[int], T], depth: Callable[[], int], name: str = "ahead"):
        self.fetch, self.depth, self.name = fetch, depth, name
        self.futures: dict[int, Future[T]] = {}
        self.executor: ThreadPoolExecutor | None = None
        self.highest = 0

    def get(self, page: int) -> T:
        future = self.futures.pop(page, None)
        asked_again = future is None and page <= self.highest
        depth = self.depth() if page > 1 and not asked_again else 1
        if future is None and depth < 2:
            self.highest = max(self.highest, page)
            return self.fetch(page)
        if future is None:
            future = self._submit(page)
        for ahead in range(max(page, self.highest) + 1, page + depth):
            self.futures[ahead] = self._submit(ahead)
        return future.result()

    def _submit(self, page: int) -> Future[T]:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(
                MAX_PREFETCH, thread_name_prefix=f"kommo-{self.name}"
            )
        self.highest = max(self.highest, page)
        return self.executor.submit(self.fetch, page)

    def close(self) -> None:
        """Pages in flight finish on their own; their answers are dropped."""
        self.futures.clear()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


def side_by_side(jobs: Sequence[Callable[[], R]], limit: int, name: str = "side") -> list[R]:
    """Run independent `jobs` at most `limit` at a time (a vendor's connection limit) and return
    their results in the jobs' order; the first job's error, if any, is raised once all ended.
    Vendor code says which jobs are independent; this is where their threads are made. A job
    must not touch the state: only the thread that owns it may."""
    if len(jobs) < 2 or limit < 2:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(limit, len(jobs)), thread_name_prefix=name) as pool:
        futures = [pool.submit(job) for job in jobs]
        wait(futures)
        return [future.result() for future in futures]


def map_side_by_side(
    work: Callable[[T], R], items: Sequence[T], limit: int, name: str = "side"
) -> list[R]:
    """`work` over independent `items`, at most `limit` at a time, results in order."""
    return side_by_side([functools.partial(work, item) for item in items], limit, name)
