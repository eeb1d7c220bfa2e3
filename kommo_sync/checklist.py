"""What a setup check finds, and the pieces every vendor's checks share: a `Check` names the
config key it is about; `Named` is an item of an account (audience, list, pipeline, field);
`Failed` ends a vendor's checks early; `vendor_failures` turns a vendor's failure into the check
of the key it is about."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kommo_sync.errors import FatalError, PagingLoop, RequestRefused, RetryLater, VendorDown
from kommo_sync.exits import EXIT_CONFIG, EXIT_FATAL, EXIT_OK


@dataclass(frozen=True)
class Check:
    """One check: the config key it is about, what was found, and the exit code it asks for
    (0 passed; 2 the key is wrong; 4 the vendor is unreachable or refuses the credentials)."""

    key: str
    message: str
    exit_code: int = EXIT_OK

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def line(self) -> str:
        return f"{'ok' if self.ok else 'failed':<6} {self.key}: {self.message}"


@dataclass(frozen=True)
class Named:
    """An audience, list, pipeline or field, as `init` offers it and a failed check names it."""

    id: str | int
    name: str
    detail: str = ""
    web_id: str | None = None

    def label(self) -> str:
        return f"{self.name!r} (id {self.id})"


class Failed(Exception):
    """A vendor check that cannot go on; `check` says why and names the key."""

    def __init__(self, check: Check):
        super().__init__(check.line())
        self.check = check


@contextmanager
def vendor_failures(section: str, secret: str, skipped: str) -> Iterator[None]:
    """A vendor's failure as the check of the key it is about: unreachable, down or paging in a
    loop → `base_url` (4); refused credentials or rights → the secret (4); any other refusal of a
    read (a 404: not that vendor's API) → `base_url` (2)."""
    try:
        yield
    except (VendorDown, PagingLoop, RetryLater) as exc:
        raise Failed(Check(f"{section}.base_url", f"{exc}; {skipped}", EXIT_FATAL)) from None
    except FatalError as exc:
        raise Failed(Check(f"{section}.{secret}", f"{exc}; {skipped}", EXIT_FATAL)) from None
    except RequestRefused as exc:
        raise Failed(Check(f"{section}.base_url", f"{exc}; {skipped}", EXIT_CONFIG)) from None


def count_of(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def not_found_hint(value: str, items: list[Named], what: str) -> str:
    """What a wrong audience or list id may have been meant as: a web id, a name, a close id."""
    for item in items:
        if item.web_id is not None and item.web_id == value:
            return f": that is the web id of {what} {item.name!r}; its API id is {item.id!r}"
        if item.name == value:
            return f": that is the name of a {what}; its id is {item.id!r}"
    close = difflib.get_close_matches(value, [str(item.id) for item in items], n=1)
    listed = ", ".join(item.label() for item in items) or "none"
    return f" ({f'did you mean {close[0]!r}? ' if close else ''}{what}s: {listed})"


def list_check(key: str, list_id: str, lists: list[Named]) -> Check:
    found = next((item for item in lists if item.id == list_id), None)
    if found:
        return Check(key, f"list {found.label()}")
    return Check(key, f"no list {list_id!r}{not_found_hint(list_id, lists, 'list')}", EXIT_CONFIG)
