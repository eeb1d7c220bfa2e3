"""One small paginator per paging style, each bounded and watching for loops.

A vendor that ignores the page asked for, or a next link that leads back to a page already
served, would otherwise page for ever while holding the lock: a page seen before (same size,
same first and last item), a next link seen before, or more pages than the vendor said it holds
stops the read with PagingLoop (fatal for that vendor).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any

from kommo_sync.errors import PagingLoop

MAX_PAGES = 50_000
Items = list[Any]


def _signature(items: Items, key: Callable[[Any], Hashable]) -> tuple[Hashable, ...]:
    return (len(items), key(items[0]), key(items[-1])) if items else (0,)


class _Seen:
    """Signatures of the pages served so far by one read."""

    def __init__(self, what: str, limit: int = MAX_PAGES):
        self.what, self.limit = what, limit
        self.signatures: set[Hashable] = set()

    def check(self, signature: Hashable, page: int) -> None:
        if signature in self.signatures:
            raise PagingLoop(
                f"{self.what}: page {page} repeats a page already served; the paging loops, "
                "so the read stopped (the next run tries again)"
            )
        if page > self.limit:
            raise PagingLoop(f"{self.what}: more than {self.limit} pages; the read stopped")
        self.signatures.add(signature)


def numbered_pages(
    fetch: Callable[[int], Items],
    limit: int,
    what: str,
    key: Callable[[Any], Hashable] = lambda item: item.get("id"),
) -> Iterator[Items]:
    """Kommo's HAL pages (page=1, 2, …): ends on an empty or short page (`next` is unreliable).
    Kommo answers an empty list with a 204, which a proxy or a fault can also produce: an empty
    page is asked for once more before the read ends, so a stray 204 never ends a read early
    (the cursor would then move past what was not read)."""
    seen = _Seen(what)
    page = 1
    while True:
        items = fetch(page) or fetch(page)
        if not items:
            return
        seen.check(_signature(items, key), page)
        yield items
        if len(items) < limit:
            return
        page += 1


def offset_pages(
    fetch: Callable[[int], tuple[Items, int | None]],
    count: int,
    what: str,
    key: Callable[[Any], Hashable] = lambda item: item.get("id"),
) -> Iterator[Items]:
    """Mailchimp's offset pages: `fetch(offset)` gives (items, total_items); ends on a short
    page or at the total; more pages than the total allows is a loop."""
    seen = _Seen(what)
    offset, page = 0, 1
    while True:
        items, total = fetch(offset)
        if not items:
            return
        if total is not None and page > total // count + 1:
            raise PagingLoop(
                f"{what}: page {page} is past the {total} items announced; the read stopped"
            )
        seen.check(_signature(items, key), page)
        yield items
        offset += len(items)
        if len(items) < count or (total is not None and offset >= total):
            return
        page += 1


def linked_pages(
    first: Callable[[], Any], follow: Callable[[str], Any], what: str
) -> Iterator[Any]:
    """JSON:API bodies following `links.next` (Klaviyo): a next link seen before is a loop."""
    links: set[str] = set()
    body, page = first(), 1
    while body:
        yield body
        next_url = (body.get("links") or {}).get("next")
        if not next_url:
            return
        page += 1
        if next_url in links or page > MAX_PAGES:
            raise PagingLoop(
                f"{what}: the next link of page {page - 1} leads to a page already served; "
                "the read stopped (the next run tries again)"
            )
        links.add(next_url)
        body = follow(next_url)
