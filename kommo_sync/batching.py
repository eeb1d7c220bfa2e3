"""Cutting work into the batch sizes each API (and SQLite) accepts, and waiting for bulk jobs."""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` items (none for no items)."""
    values: Sequence[T] = items if isinstance(items, (list, tuple)) else list(items)
    for start in range(0, len(values), size):
        yield list(values[start:start + size])


def poll_delays() -> Iterator[float]:
    """Seconds between polls of a vendor's asynchronous job, as Mailchimp advises for its
    batches: about 5 s first, then backing off (×1.5) to a minute."""
    delay = 5.0
    while True:
        yield delay
        delay = min(delay * 1.5, 60.0)
